// Types of @potter-config/sdk (the helpers) and of the host interface a plugin imports.

/** The view being validated. */
export interface View {
    environment: string;
    /** Undefined for an environment as a whole. */
    service?: string;
}

export type Severity = 'error' | 'warning';

/** One problem: a dotted path under your prefixes (or `plugins.<name>`) and a message. */
export interface IssueRecord {
    path: string;
    message: string;
    severity: Severity;
}

export declare class Config {
    constructor(tree: unknown);
    static parse(text: string): Config;
    root(): unknown;
    get<T = unknown>(dotted: string, fallback?: T): T | undefined;
}

export declare const Issue: {
    error(path: string, message: string): IssueRecord;
    warning(path: string, message: string): IssueRecord;
};

export declare function validator(
    check: (view: View, config: Config) => Iterable<IssueRecord>,
): (view: View, config: string) => IssueRecord[];

/** The exports of world `source`; destructure them: `export const { load, pollIntervalMs, changeToken } = source(...)`. */
export declare function source(
    load: (environment: string) => Record<string, unknown>,
    options?: { pollIntervalMs?: number; changeToken?: () => string },
): { load(environment: string): string; pollIntervalMs(): number; changeToken(): string | undefined };

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** A line in the host's log, tagged with the plugin's name (inside a component only). */
export declare function log(level: LogLevel, message: string): void;
/** The environment the current call is about (inside a component only). */
export declare function environment(): string;
/** This plugin's own namespace `plugins.<name>`, parsed (inside a component only). */
export declare function namespaceConfig(): unknown;

declare module 'potter:config/host@0.2.0' {
    export function log(level: LogLevel, message: string): void;
    export function environment(): string;
    export function namespaceConfig(): string;
}
