#!/usr/bin/env python3
# Copied from the project's shared benchmark kit so benches can regenerate the corpus on any machine.
"""Deterministic generator of layered configuration trees for peer benchmarks.

Layout written for each size (TREE = <out>/<size>):

    TREE/global.json
    TREE/environments/{development,staging,production}.json
    TREE/services/<name>.json
    TREE/keys.txt        1000 dotted leaf paths sampled from the merged production view
    TREE/manifest.json   counts (leaves per layer, merged leaves, bytes) for reports

Merge order used by every peer (and by `merged_view` below):
    global  <-  environments/production  <-  services/<name> nested under services.<name>
(objects deep-merge; any non-object value, arrays included, replaces the earlier one).

Everything is driven by random.Random(seeded with a fixed string per size), so two runs
produce byte-identical trees.  Python's string seeding is stable across processes
(it hashes with SHA-512, not with the randomised str hash).

Usage:  gen.py --out DIR [--size small|medium|large|all]
"""
import argparse
import json
import os
import random
import shutil

SEED = "layered-config-bench-v1"

# leaves: global_leaves + services * service_leaves  ~= the target merged leaf count
SIZES = {
    "small": dict(services=3, global_leaves=60, service_leaves=30),        # ~150
    "medium": dict(services=50, global_leaves=1000, service_leaves=180),   # ~10,000
    "large": dict(services=500, global_leaves=5000, service_leaves=190),   # ~100,000
}
ENVIRONMENTS = ["development", "staging", "production"]
OVERRIDE_FRACTION = 0.20
N_KEYS = 1000

SECTIONS = [
    "server", "http", "grpc", "client", "database", "postgres", "replica", "primary",
    "cache", "redis", "memcached", "queue", "kafka", "consumer", "producer", "auth",
    "oauth", "jwt", "session", "tls", "logging", "metrics", "tracing", "health",
    "limits", "rate_limit", "retry", "backoff", "circuit_breaker", "timeouts", "pool",
    "storage", "s3", "upload", "export", "search", "index", "scheduler", "workers",
    "jobs", "features", "flags", "cors", "smtp", "notifications", "webhooks", "billing",
    "payments", "cluster", "region", "shard", "dns", "proxy", "admin", "ui", "api",
    "compression", "security", "audit", "telemetry", "sampling", "alerts", "i18n",
]
LEAVES = [
    "enabled", "host", "port", "url", "endpoint", "path", "timeout_ms", "connect_timeout_ms",
    "idle_timeout_s", "max_connections", "min_idle", "max_idle", "retries", "max_retries",
    "interval_s", "ttl_seconds", "level", "format", "name", "user", "database", "bucket",
    "region", "ratio", "threshold", "sample_rate", "weight", "buffer_size", "batch_size",
    "max_size_mb", "queue_depth", "concurrency", "mode", "strategy", "version", "prefix",
    "allowed_origins", "tags", "endpoints", "brokers", "weights", "percentiles", "ports",
    "cipher_suites", "scopes", "log_queries", "verify", "strict", "dry_run", "jitter",
    "factor", "burst", "cooldown_s", "owner", "description", "dsn", "topic", "group_id",
]
WORDS = [
    "alpha", "beta", "gamma", "delta", "eu", "us", "west", "east", "central", "primary",
    "backup", "fast", "slow", "json", "text", "debug", "info", "warn", "error", "round_robin",
    "least_conn", "random", "internal", "public", "orders", "users", "events", "audit",
    "reports", "media", "edge", "core", "blue", "green", "canary", "stable",
]
SERVICE_WORDS = [
    "auth", "billing", "search", "catalog", "orders", "payments", "inventory", "shipping",
    "gateway", "profile", "notify", "reports", "analytics", "media", "export", "import",
    "ledger", "pricing", "cart", "checkout", "reviews", "ratings", "feeds", "sessions",
    "audit", "metrics", "scheduler", "mailer", "sms", "push", "geo", "tax", "fraud",
    "identity", "accounts", "admin", "content", "assets", "thumbnails", "recommend",
]
SERVICE_SUFFIXES = ["api", "worker", "sync", "proxy", "cron", "stream", "edge", "batch",
                    "reader", "writer", "indexer", "relay", "store"]

DEPTH_WEIGHTS = [(2, 0.30), (3, 0.35), (4, 0.25), (5, 0.10)]
TYPE_WEIGHTS = [("str", 0.33), ("int", 0.25), ("float", 0.10), ("bool", 0.15), ("array", 0.17)]


def weighted(rng, pairs):
    x = rng.random()
    acc = 0.0
    for v, w in pairs:
        acc += w
        if x < acc:
            return v
    return pairs[-1][0]


def unique_name(rng, words, taken):
    base = rng.choice(words)
    if base not in taken:
        return base
    i = 2
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


def scalar(rng, kind):
    if kind == "str":
        shape = rng.random()
        if shape < 0.3:
            return f"{rng.choice(WORDS)}-{rng.choice(WORDS)}.svc.internal"
        if shape < 0.5:
            return f"https://{rng.choice(WORDS)}.example.com/{rng.choice(WORDS)}/{rng.randint(1, 99)}"
        if shape < 0.6:
            return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
        return rng.choice(WORDS) + ("_" + rng.choice(WORDS) if rng.random() < 0.5 else "")
    if kind == "int":
        return rng.choice([rng.randint(0, 10), rng.randint(10, 1000), rng.randint(1000, 100000)])
    if kind == "float":
        f = round(rng.uniform(0, 100) if rng.random() < 0.5 else rng.random(), 3)
        if f == int(f):  # keep it a JSON float with a fractional part
            f += 0.125
        return f
    if kind == "bool":
        return rng.random() < 0.5
    raise ValueError(kind)


def value(rng, kind=None):
    kind = kind or weighted(rng, TYPE_WEIGHTS)
    if kind == "array":
        elem = rng.choice(["str", "str", "int", "float"])
        return [scalar(rng, elem) for _ in range(rng.randint(1, 6))]
    return scalar(rng, kind)


def kind_of(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, list):
        return "array"
    return "str"


def gen_tree(rng, n_leaves):
    """A nested dict with exactly n_leaves leaves, each at depth 2..5 inside the file."""
    root = {}
    made = 0
    while made < n_leaves:
        depth = weighted(rng, DEPTH_WEIGHTS)
        node = root
        for _ in range(depth - 1):
            dicts = [k for k, v in node.items() if isinstance(v, dict)]
            if dicts and rng.random() < 0.75:
                node = node[rng.choice(dicts)]
            else:
                name = unique_name(rng, SECTIONS, node)
                node[name] = {}
                node = node[name]
        node[unique_name(rng, LEAVES, node)] = value(rng)
        made += 1
    return root


def leaf_paths(d, prefix=""):
    for k, v in d.items():
        p = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            yield from leaf_paths(v, p)
        else:
            yield p, v


def set_path(d, path, v):
    parts = path.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = v


def deep_merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def service_names(rng, n):
    names = []
    taken = set()
    while len(names) < n:
        if n <= len(SERVICE_WORDS) and rng.random() < 0.6:
            name = rng.choice(SERVICE_WORDS)
        else:
            name = f"{rng.choice(SERVICE_WORDS)}_{rng.choice(SERVICE_SUFFIXES)}"
        if name in taken:
            continue
        taken.add(name)
        names.append(name)
    return names


def load_json(path):
    with open(path) as f:
        return json.load(f)


def merged_view(tree, env="production"):
    """The merged view every peer must produce (used by keys.txt and the etcd loader)."""
    merged = load_json(os.path.join(tree, "global.json"))
    deep_merge(merged, load_json(os.path.join(tree, "environments", f"{env}.json")))
    sdir = os.path.join(tree, "services")
    for fn in sorted(os.listdir(sdir)):
        if fn.endswith(".json"):
            deep_merge(merged, {"services": {fn[:-5]: load_json(os.path.join(sdir, fn))}})
    return merged


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def generate(size, out):
    spec = SIZES[size]
    rng = random.Random(f"{SEED}/{size}")
    tree = os.path.join(out, size)
    if os.path.isdir(tree):
        shutil.rmtree(tree)
    os.makedirs(os.path.join(tree, "environments"))
    os.makedirs(os.path.join(tree, "services"))

    glob = gen_tree(rng, spec["global_leaves"])
    write_json(os.path.join(tree, "global.json"), glob)
    gleaves = list(leaf_paths(glob))

    env_counts = {}
    for env in ENVIRONMENTS:
        erng = random.Random(f"{SEED}/{size}/{env}")
        chosen = erng.sample(gleaves, max(1, round(len(gleaves) * OVERRIDE_FRACTION)))
        over = {}
        for path, old in chosen:
            k = kind_of(old)
            nv = value(erng, k)
            if nv == old:
                nv = value(erng, k) if k != "bool" else (not old)
            set_path(over, path, nv)
        write_json(os.path.join(tree, "environments", f"{env}.json"), over)
        env_counts[env] = len(chosen)

    names = service_names(rng, spec["services"])
    for name in names:
        write_json(os.path.join(tree, "services", f"{name}.json"), gen_tree(rng, spec["service_leaves"]))

    merged = merged_view(tree, "production")
    all_leaves = [p for p, _ in leaf_paths(merged)]
    krng = random.Random(f"{SEED}/{size}/keys")
    if len(all_leaves) >= N_KEYS:
        keys = krng.sample(all_leaves, N_KEYS)
    else:  # small tree: every leaf, repeated in shuffled rounds until 1000
        keys = []
        while len(keys) < N_KEYS:
            batch = all_leaves[:]
            krng.shuffle(batch)
            keys.extend(batch)
        keys = keys[:N_KEYS]
    with open(os.path.join(tree, "keys.txt"), "w") as f:
        f.write("\n".join(keys) + "\n")

    nbytes = 0
    nfiles = 0
    for dp, _, fns in os.walk(tree):
        for fn in fns:
            if fn.endswith(".json") and fn != "manifest.json":
                nbytes += os.path.getsize(os.path.join(dp, fn))
                nfiles += 1
    manifest = {
        "size": size,
        "seed": SEED,
        "services": len(names),
        "global_leaves": len(gleaves),
        "env_override_leaves": env_counts,
        "service_leaves_each": spec["service_leaves"],
        "merged_production_leaves": len(all_leaves),
        "distinct_keys_in_keys_txt": len(set(keys)),
        "json_files": nfiles,
        "json_bytes": nbytes,
    }
    write_json(os.path.join(tree, "manifest.json"), manifest)
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory that receives one tree per size")
    ap.add_argument("--size", default="all", choices=list(SIZES) + ["all"])
    a = ap.parse_args()
    sizes = list(SIZES) if a.size == "all" else [a.size]
    for s in sizes:
        m = generate(s, a.out)
        print(f"{s}: services={m['services']} merged_leaves={m['merged_production_leaves']} "
              f"files={m['json_files']} bytes={m['json_bytes']}")


if __name__ == "__main__":
    main()
