//! Sandbox test: returns values the host must refuse — a reject with a 2xx code on MAIL, a
//! reply line with CRLF in it on RCPT, a header name with a colon on DATA, and reply code 999
//! to its verb XBAD. Each hook logs how many calls its instance has had (`call N of this
//! instance`), so a test can see that the host drops an instance after an invalid answer.

use wasmail_plugin_sdk::{
    export_plugin, host, AddressInfo, CommandResult, DataResult, Envelope, Header, HeaderChange, Hook, Manifest, Plugin, Reply, Verdict,
};

#[derive(Default)]
struct BadReply {
    /// Calls this instance has had.
    calls: u32,
}

impl BadReply {
    fn count(&mut self) {
        self.calls += 1;
        host::info(&format!("call {} of this instance", self.calls));
    }
}

impl Plugin for BadReply {
    fn manifest() -> Manifest {
        Manifest::new("bad-reply", "0.1.0").verb("XBAD").hook(Hook::MailFrom).hook(Hook::RcptTo).hook(Hook::Data)
    }

    fn on_mail_from(&mut self, _info: AddressInfo) -> Verdict {
        self.count();
        Verdict::Reject(Reply::new(250, (2, 0, 0), "a reject that says OK"))
    }

    fn on_rcpt_to(&mut self, _info: AddressInfo) -> Verdict {
        self.count();
        Verdict::Tempfail(Reply::new(450, (4, 0, 0), "line one\r\n250 smuggled"))
    }

    fn on_data(&mut self, _envelope: Envelope, _headers: Vec<Header>) -> DataResult {
        self.count();
        DataResult::changes(vec![HeaderChange::Add(Header::new("Bad:Name", "x"))])
    }

    fn on_command(&mut self, _verb: String, _args: String) -> CommandResult {
        self.count();
        CommandResult::reply(Reply::new(999, (2, 0, 0), "no such code"))
    }
}

export_plugin!(BadReply);
