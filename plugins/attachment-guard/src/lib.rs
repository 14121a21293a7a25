//! Removes (or refuses) attachments whose file name or type is on a deny list, the classic
//! defence against executable attachments. See README.md for the config.

use wasmail_plugin_sdk::{export_plugin, host, Manifest, PartInfo, PartResult, Plugin, Reply};

const DEFAULT_EXTENSIONS: &str = ".exe .scr .js .vbs .bat .cmd .com .pif";
const DEFAULT_TYPES: &str = "application/x-msdownload";

#[derive(Default)]
struct AttachmentGuard;

/// Why a part is denied, for the note and the log.
fn denied(part: &PartInfo) -> Option<String> {
    let extensions = host::config("deny_extensions").unwrap_or_else(|| DEFAULT_EXTENSIONS.to_string());
    let types = host::config("deny_types").unwrap_or_else(|| DEFAULT_TYPES.to_string());
    let essence = format!("{}/{}", part.content_type, part.content_subtype);
    if types.split_whitespace().any(|t| t.eq_ignore_ascii_case(&essence)) {
        return Some(format!("a part of type {essence}"));
    }
    let name = part.filename.as_deref()?;
    // Windows ignores trailing dots and spaces: "x.exe." opens as "x.exe".
    let name_lower = name.trim_end_matches(['.', ' ']).to_lowercase();
    extensions
        .split_whitespace()
        .map(|e| format!(".{}", e.trim_start_matches('.').to_lowercase()))
        .any(|e| name_lower.ends_with(&e))
        .then(|| format!("the attachment \"{name}\""))
}

impl Plugin for AttachmentGuard {
    fn manifest() -> Manifest {
        Manifest::new("attachment-guard", env!("CARGO_PKG_VERSION")).mime_type("*/*")
    }

    fn on_part(&mut self, part: PartInfo) -> PartResult {
        let Some(what) = denied(&part) else {
            return PartResult::keep();
        };
        if host::config("action").as_deref() == Some("reject") {
            host::info(&format!("refusing the message: {what} (section {})", part.section));
            return PartResult::reject(Reply::new(550, (5, 7, 1), format!("Message refused: {what} is not accepted here")));
        }
        host::info(&format!("removed {what} (section {})", part.section));
        PartResult::remove(format!("The mail server removed {what} from this message: files of this type are not accepted."))
    }
}

export_plugin!(AttachmentGuard);
