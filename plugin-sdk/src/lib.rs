//! Write [Wasmail](https://github.com/) plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`. This crate generates the
//! guest side of the `wasmail:plugin` WIT world (from the same `wit/` folder the server
//! uses) and offers the [`Plugin`] trait, whose hooks all have defaults, plus the
//! [`export_plugin!`] macro that wires a type to the world's exports.
//!
//! The server makes one instance of a plugin per SMTP session, and the SDK keeps one value
//! of your type per instance (made with `Default` at the first hook), so fields of your type
//! are per-session state. State that must outlive a session goes to [`host::kv_set`].
//!
//! # Example: a plugin that adds an EHLO keyword and a verb
//!
//! ```no_run
//! use wasmail_plugin_sdk::{export_plugin, CommandResult, Manifest, Plugin, Reply, Hook};
//!
//! #[derive(Default)]
//! struct Hello {
//!     greeted: u32,
//! }
//!
//! impl Plugin for Hello {
//!     fn manifest() -> Manifest {
//!         Manifest::new("hello", "0.1.0").keyword("XHELLO", None).verb("XHELLO")
//!     }
//!
//!     fn on_command(&mut self, _verb: String, args: String) -> CommandResult {
//!         self.greeted += 1;
//!         let text = format!("Hello {args}, greeting number {}", self.greeted);
//!         CommandResult::reply(Reply::new(250, (2, 0, 0), text))
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`) and put
//! the `.wasm` file in the server's plugin directory.

#![deny(missing_docs)]

/// The generated bindings. Use the re-exports at the crate root instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "wasmail_plugin_sdk::bindings",
    });
}

pub use bindings::wasmail::plugin::types::{
    AddressInfo, CommandResult, ConnectInfo, DataResult, EhloKeyword, EnhancedCode, Envelope, Header, HeaderChange, HeaderRef, HeloInfo, Hook,
    Manifest, Param, Reply, ReplyContext, Verdict,
};

pub use bindings::exports::wasmail::plugin::delivery::{Decision, MessageInfo, RecipientInfo, Route};
pub use bindings::exports::wasmail::plugin::mime_handler::{ParamValue, PartAction, PartInfo, PartResult, Replacement};

pub mod host;

/// The hooks of a plugin. Every method has a default that does nothing (the verdict is
/// `Continue`), so a plugin implements only what it needs, and lists those hooks in its
/// [`Manifest`]: the server calls only the hooks the manifest names.
pub trait Plugin: Default + 'static {
    /// What the plugin adds: keywords, verbs, parameters, hooks. Called once, at load time.
    fn manifest() -> Manifest;

    /// A client connected.
    fn on_connect(&mut self, _info: ConnectInfo) -> Verdict {
        Verdict::Continue
    }

    /// HELO or EHLO.
    fn on_helo(&mut self, _info: HeloInfo) -> Verdict {
        Verdict::Continue
    }

    /// MAIL FROM, with all its parameters.
    fn on_mail_from(&mut self, _info: AddressInfo) -> Verdict {
        Verdict::Continue
    }

    /// RCPT TO, with all its parameters.
    fn on_rcpt_to(&mut self, _info: AddressInfo) -> Verdict {
        Verdict::Continue
    }

    /// The message content arrived; `headers` is its header, unfolded.
    fn on_data(&mut self, _envelope: Envelope, _headers: Vec<Header>) -> DataResult {
        DataResult { verdict: Verdict::Continue, header_changes: Vec::new() }
    }

    /// The transaction ended (RSET, new HELO/EHLO, end of data).
    fn on_reset(&mut self) {}

    /// One of the manifest's verbs was sent.
    fn on_command(&mut self, verb: String, _args: String) -> CommandResult {
        CommandResult::reply(Reply::new(502, (5, 5, 1), format!("{verb} is not implemented")))
    }

    /// Lines to add to a reply the server is about to send.
    fn on_reply(&mut self, _context: ReplyContext) -> Vec<String> {
        Vec::new()
    }

    /// A MIME part whose type matched the manifest's [`Manifest::mime_type`] patterns, after
    /// the data hooks and before the message is stored. The default keeps the part.
    fn on_part(&mut self, _part: PartInfo) -> PartResult {
        PartResult::keep()
    }

    /// Where a recipient's copy goes, at the message's first delivery attempt (list
    /// [`Hook::Route`] in the manifest). The default leaves it to the server.
    fn route(&mut self, _message: MessageInfo, _recipient: RecipientInfo) -> Decision {
        Decision::default_route()
    }

    /// After each delivery attempt, for each recipient (list [`Hook::DeliveryResult`]):
    /// `outcome` is `delivered`, `failed` or `deferred`.
    fn delivery_result(&mut self, _message: MessageInfo, _recipient: String, _outcome: String, _detail: String) {}
}

impl Manifest {
    /// A manifest with a name and version and nothing else.
    pub fn new(name: &str, version: &str) -> Manifest {
        Manifest {
            name: name.to_string(),
            version: version.to_string(),
            ehlo_keywords: Vec::new(),
            verbs: Vec::new(),
            mail_params: Vec::new(),
            rcpt_params: Vec::new(),
            hooks: Vec::new(),
            activated_by_verb: false,
            mime_types: Vec::new(),
        }
    }

    /// Declares that the hooks only matter after one of the plugin's verbs was used in the
    /// session (a mode, like VERB): the server then makes no instance for the hooks alone.
    pub fn activated_by_verb(mut self) -> Manifest {
        self.activated_by_verb = true;
        self
    }

    /// Adds an EHLO keyword, with optional parameters (`"1000"` for `SIZE 1000`).
    pub fn keyword(mut self, name: &str, params: Option<&str>) -> Manifest {
        self.ehlo_keywords.push(EhloKeyword { name: name.to_string(), params: params.map(str::to_string) });
        self
    }

    /// Claims a verb: the server routes it to [`Plugin::on_command`].
    pub fn verb(mut self, verb: &str) -> Manifest {
        self.verbs.push(verb.to_string());
        self
    }

    /// Claims a MAIL parameter: it reaches [`Plugin::on_mail_from`] instead of a 555.
    pub fn mail_param(mut self, keyword: &str) -> Manifest {
        self.mail_params.push(keyword.to_string());
        self
    }

    /// Claims a RCPT parameter: it reaches [`Plugin::on_rcpt_to`] instead of a 555.
    pub fn rcpt_param(mut self, keyword: &str) -> Manifest {
        self.rcpt_params.push(keyword.to_string());
        self
    }

    /// Asks for a hook to be called.
    pub fn hook(mut self, hook: Hook) -> Manifest {
        self.hooks.push(hook);
        self
    }

    /// Asks for the MIME parts of this type (`text/plain`, `application/*`, `*/*`) to be
    /// passed to [`Plugin::on_part`].
    pub fn mime_type(mut self, pattern: &str) -> Manifest {
        self.mime_types.push(pattern.to_string());
        self
    }
}

impl Decision {
    /// Leave the recipient to the server.
    pub fn default_route() -> Decision {
        Decision { route: Route::Default, copies: Vec::new() }
    }

    /// A decision with this route and no copies.
    pub fn route(route: Route) -> Decision {
        Decision { route, copies: Vec::new() }
    }
}

impl MessageInfo {
    /// The value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

impl PartInfo {
    /// A Content-Type parameter (`charset`, `name`), by its lower-case name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|p| p.name == name).map(|p| p.value.as_str())
    }

    /// Whether the part is of this type and subtype (lower case).
    pub fn is(&self, content_type: &str, subtype: &str) -> bool {
        self.content_type == content_type && self.content_subtype == subtype
    }

    /// Whether the part is marked as an attachment or has a file name.
    pub fn is_attachment(&self) -> bool {
        self.disposition.as_deref() == Some("attachment") || self.filename.is_some()
    }
}

impl PartResult {
    /// Leave the part as it is.
    pub fn keep() -> PartResult {
        PartResult { action: PartAction::Keep, add_headers: Vec::new() }
    }

    /// New content for the part, and optionally a new Content-Type value.
    pub fn replace(body: Vec<u8>, content_type: Option<String>) -> PartResult {
        PartResult { action: PartAction::Replace(Replacement { body, content_type }), add_headers: Vec::new() }
    }

    /// Take the part out, leaving this note in its place.
    pub fn remove(note: impl Into<String>) -> PartResult {
        PartResult { action: PartAction::Remove(note.into()), add_headers: Vec::new() }
    }

    /// Refuse the whole message with a 5xx reply.
    pub fn reject(reply: Reply) -> PartResult {
        PartResult { action: PartAction::Reject(reply), add_headers: Vec::new() }
    }

    /// Adds a header field to the message.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> PartResult {
        self.add_headers.push(Header::new(name, value));
        self
    }
}

impl Reply {
    /// A one-line reply with an enhanced code, e.g. `Reply::new(250, (2, 0, 0), "Ok")`.
    pub fn new(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Reply {
        let (class, subject, detail) = enhanced;
        Reply { code, enhanced: Some(EnhancedCode { class, subject, detail }), lines: vec![text.into()] }
    }
}

impl CommandResult {
    /// Send `reply` and keep the connection open.
    pub fn reply(reply: Reply) -> CommandResult {
        CommandResult { reply, close: false }
    }
}

impl DataResult {
    /// Go on, with these header changes.
    pub fn changes(header_changes: Vec<HeaderChange>) -> DataResult {
        DataResult { verdict: Verdict::Continue, header_changes }
    }
}

impl Header {
    /// A header field.
    pub fn new(name: &str, value: impl Into<String>) -> Header {
        Header { name: name.to_string(), value: value.into() }
    }
}

/// The usual answer to a verb that switches a session mode on (sendmail's VERB, ONEX, XUSR):
/// arguments are refused with `501 5.5.4 Syntax: VERB`; otherwise `mode` is set and the
/// answer is `250 2.0.0 text`.
pub fn switch_on(verb: &str, args: &str, mode: &mut bool, text: &str) -> CommandResult {
    if !args.trim().is_empty() {
        return CommandResult::reply(Reply::new(501, (5, 5, 4), format!("Syntax: {verb}")));
    }
    *mode = true;
    CommandResult::reply(Reply::new(250, (2, 0, 0), text))
}

/// Finds the value of the first header named `name` (case-insensitive).
pub fn header_value<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

/// Exports a type that implements [`Plugin`] as the plugin of this component.
///
/// The macro keeps one value of the type per instance (that is, per SMTP session), created
/// with `Default` at the first hook.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            use $crate::bindings::exports::wasmail::plugin::session::Guest;
            use $crate::Plugin as _;

            struct Exports;

            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            fn with<R>(f: impl FnOnce(&mut $plugin) -> R) -> R {
                STATE.with(|state| {
                    let mut state = state.borrow_mut();
                    f(state.get_or_insert_with(::std::default::Default::default))
                })
            }

            impl Guest for Exports {
                fn get_manifest() -> $crate::Manifest {
                    <$plugin as $crate::Plugin>::manifest()
                }
                fn on_connect(info: $crate::ConnectInfo) -> $crate::Verdict {
                    with(|p| p.on_connect(info))
                }
                fn on_helo(info: $crate::HeloInfo) -> $crate::Verdict {
                    with(|p| p.on_helo(info))
                }
                fn on_mail_from(info: $crate::AddressInfo) -> $crate::Verdict {
                    with(|p| p.on_mail_from(info))
                }
                fn on_rcpt_to(info: $crate::AddressInfo) -> $crate::Verdict {
                    with(|p| p.on_rcpt_to(info))
                }
                fn on_data(envelope: $crate::Envelope, headers: ::std::vec::Vec<$crate::Header>) -> $crate::DataResult {
                    with(|p| p.on_data(envelope, headers))
                }
                fn on_reset() {
                    with(|p| p.on_reset())
                }
                fn on_command(verb: ::std::string::String, args: ::std::string::String) -> $crate::CommandResult {
                    with(|p| p.on_command(verb, args))
                }
                fn on_reply(context: $crate::ReplyContext) -> ::std::vec::Vec<::std::string::String> {
                    with(|p| p.on_reply(context))
                }
            }

            impl $crate::bindings::exports::wasmail::plugin::delivery::Guest for Exports {
                fn route_recipient(message: $crate::MessageInfo, recipient: $crate::RecipientInfo) -> $crate::Decision {
                    with(|p| p.route(message, recipient))
                }
                fn delivery_result(
                    message: $crate::MessageInfo,
                    recipient: ::std::string::String,
                    outcome: ::std::string::String,
                    detail: ::std::string::String,
                ) {
                    with(|p| p.delivery_result(message, recipient, outcome, detail))
                }
            }

            impl $crate::bindings::exports::wasmail::plugin::mime_handler::Guest for Exports {
                fn on_part(part: $crate::PartInfo) -> $crate::PartResult {
                    with(|p| p.on_part(part))
                }
            }

    $crate::bindings::__export_plugin_world!(Exports with_types_in $crate::bindings);
        };
    };
}

/// The plugin author's guide (`docs/plugin-guide.md`), included here so that its worked
/// examples are compiled as this crate's doctests and cannot drift from the SDK.
#[doc = include_str!("../../docs/plugin-guide.md")]
#[cfg(doctest)]
pub struct PluginGuide;
