//! Internal part of `potter-sdk`: raw bindings of world `source-with-namespace`.
//!
//! They live in their own crate because wit-bindgen exports one crate-level
//! macro per exported interface, named after the interface: the `namespace`
//! interface exported by both `validator-with-namespace` (generated in
//! `potter-sdk`) and `source-with-namespace` would define the same macro twice
//! in one crate. Use `potter_sdk::export_source_with_namespace!` instead.

pub mod bindings {
    wit_bindgen::generate!({
        world: "source-with-namespace",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_source_with_namespace_bindings",
        default_bindings_module: "::potter_sdk::bindings_source_with_namespace",
        runtime_path: "::wit_bindgen::rt",
    });
}
