//! The host side of the `wasmail:plugin` WIT world: the only place `bindgen!` runs.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    // Hooks are called with `call_async` on a fiber: guest code runs inside the session's
    // task, yields at every epoch tick, and WASI's blocking streams (stderr) are awaited
    // instead of blocking a runtime thread. The host imports themselves are quick and sync.
    exports: { default: async },
});

pub use self::exports::wasmail::plugin::delivery as delivery_types;
pub use self::exports::wasmail::plugin::mime_handler as mime_types;
pub use self::wasmail::plugin::types;
