//! The host side of the `wasmail:plugin` WIT world: the only place `bindgen!` runs.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
});

pub use exports::wasmail::plugin::session::Guest;
pub use wasmail::plugin::types;
