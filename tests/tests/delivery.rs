//! Delivery hook plugins end to end: subaddress, list-sorter, archive and forward decide where
//! each recipient's copy goes, and the result is read back from the Maildir.

use std::path::Path;

use wasmail_tests::{read_maildir, Server, Setup};

fn server(plugins: &[(&str, Option<&str>)], users: &[&str]) -> Server {
    let mut setup = Setup { users: users.iter().map(|u| u.to_string()).collect(), ..Setup::default() };
    for (name, toml) in plugins {
        setup = setup.plugin(name, *toml);
    }
    Server::start_with(setup)
}

fn send(server: &Server, to: &[&str], headers: &str, subject: &str) {
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail("daniel@client.example", to, &format!("Subject: {subject}\r\n{headers}\r\nbody\r\n"));
    assert_eq!(reply.code, 250, "{reply:?}");
}

fn folder(server: &Server, user: &str, maildir_folder: &str) -> Vec<String> {
    read_maildir(&server.data_dir().join("mail").join(user).join(maildir_folder))
}

#[test]
fn subaddress_files_user_plus_tag_into_the_folder_tag() {
    let s = server(&[("subaddress", None)], &["tyler"]);
    send(&s, &["tyler+work@localhost"], "", "for work");
    send(&s, &["tyler@localhost"], "", "plain");
    s.wait_for_queue();
    let work = folder(&s, "tyler", ".work");
    assert_eq!(work.len(), 1);
    assert!(work[0].contains("Subject: for work"));
    assert!(Path::new(&s.data_dir().join("mail/tyler/.work/maildirfolder")).is_file());
    let inbox = s.mailbox("tyler");
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains("Subject: plain"));
}

#[test]
fn list_sorter_files_list_mail_under_lists() {
    let s = server(&[("list-sorter", None)], &["tyler", "hunt"]);
    send(&s, &["tyler@localhost", "hunt@localhost"], "List-Id: Rust users <rust-users.lists.example.org>\r\n", "list post");
    send(&s, &["tyler@localhost"], "", "direct");
    s.wait_for_queue();
    for user in ["tyler", "hunt"] {
        let list = folder(&s, user, ".Lists.rust-users");
        assert_eq!(list.len(), 1, "{user}");
        assert!(list[0].contains("Subject: list post"));
    }
    assert_eq!(s.mailbox("tyler").len(), 1, "the direct mail stays in the inbox");
    assert!(s.mailbox("hunt").is_empty());
}

#[test]
fn archive_keeps_one_copy_of_every_message_and_an_audit_trail() {
    let s = server(&[("archive", Some("[config]\nmailbox = \"archive@localhost\"\n"))], &["tyler", "hunt", "archive"]);
    send(&s, &["tyler@localhost", "hunt@localhost"], "", "first");
    send(&s, &["tyler@localhost"], "", "second");
    s.wait_for_queue();
    let archived = s.mailbox("archive");
    assert_eq!(archived.len(), 2, "one copy per message, however many recipients");
    assert_eq!(s.mailbox("tyler").len(), 2);
    assert_eq!(s.mailbox("hunt").len(), 1);
    let log = s.log();
    let audits = log.iter().filter(|l| l.contains("audit: ") && l.contains(" delivered ")).count();
    assert_eq!(audits, 5, "tyler, hunt and the archive for the first, tyler and the archive for the second: {log:#?}");
}

#[test]
fn forward_redirects_an_address_to_others() {
    let toml = "[config]\n\"old@localhost\" = \"tyler@localhost, hunt@localhost\"\n\"gone@localhost\" = \"nobody@localhost\"\n";
    let s = server(&[("forward", Some(toml))], &["tyler", "hunt", "old", "gone", "daniel"]);
    send(&s, &["old@localhost"], "", "moved");
    s.wait_for_queue();
    assert!(s.mailbox("old").is_empty());
    assert_eq!(s.mailbox("tyler").len(), 1);
    assert_eq!(s.mailbox("hunt").len(), 1);
    // A forward to a local address without a mailbox fails like any unknown user.
    let mut c = s.connect();
    c.greet();
    c.expect("MAIL FROM:<daniel@localhost>", 250);
    c.expect("RCPT TO:<gone@localhost>", 250);
    c.expect("DATA", 354);
    c.send("Subject: to nobody\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    s.wait_for_queue();
    let bounce = &s.mailbox("daniel")[0];
    assert!(bounce.contains("Final-Recipient: rfc822; nobody@localhost") && bounce.contains("Status: 5.1.1"), "{bounce}");
}

#[test]
fn a_failing_delivery_hook_follows_its_policy() {
    for (mode, kind) in [("panic", "trap"), ("loop", "timeout"), ("copies", "invalid")] {
        // open: the hook is skipped and the message delivered as if it were not there.
        let toml = format!("fail = \"open\"\ncall_timeout = \"100ms\"\n[config]\nmode = \"{mode}\"\n");
        let s = server(&[("route-trouble", Some(&toml))], &["tyler"]);
        send(&s, &["tyler@localhost"], "", mode);
        assert_eq!(s.mailbox("tyler").len(), 1, "{mode}");
        let log = s.log();
        let failure = log.iter().find(|l| l.contains("plugin failed")).unwrap_or_else(|| panic!("{mode}: nothing logged"));
        assert!(
            failure.contains("\"plugin\":\"route-trouble\"")
                && failure.contains(&format!("\"kind\":\"{kind}\""))
                && failure.contains("\"hook\":\"route\""),
            "{failure}"
        );

        // closed: the recipient waits in the queue for a working plugin; nothing is lost.
        let toml = format!("fail = \"closed\"\ncall_timeout = \"100ms\"\n[config]\nmode = \"{mode}\"\n");
        let s = server(&[("route-trouble", Some(&toml))], &["tyler"]);
        send(&s, &["tyler@localhost"], "", mode);
        assert!(s.logged(|l| l.contains("delivery deferred")), "{mode}: no deferral");
        assert_eq!(s.queued().len(), 1, "{mode}");
        assert!(s.mailbox_now("tyler").is_empty(), "{mode}");
    }
}

#[test]
fn routes_reject_defer_discard_and_relay() {
    let with = |mode: &str, extra: &str| server(&[("route-trouble", Some(&format!("[config]\nmode = \"{mode}\"\n{extra}")))], &["tyler", "daniel"]);
    let from_daniel = |s: &Server| {
        let mut c = s.connect();
        c.greet();
        assert_eq!(c.send_mail("daniel@localhost", &["tyler@localhost"], "Subject: routed\r\n\r\nx\r\n").code, 250);
    };
    // reject: a bounce with the hook's text.
    let s = with("reject", "");
    from_daniel(&s);
    s.wait_for_queue();
    let bounce = &s.mailbox("daniel")[0];
    assert!(bounce.contains("Status: 5.7.1") && bounce.contains("tyler@localhost is not taking mail today"), "{bounce}");
    assert!(s.mailbox("tyler").is_empty());
    // discard: nothing, and nobody told.
    let s = with("discard", "");
    from_daniel(&s);
    s.wait_for_queue();
    assert!(s.mailbox("tyler").is_empty() && s.mailbox("daniel").is_empty());
    // defer: waits in the queue, asked again later.
    let s = with("defer", "");
    from_daniel(&s);
    assert!(s.logged(|l| l.contains("delivery deferred")), "no deferral");
    assert_eq!(s.queued().len(), 1);
    // relay: to the hop the hook names, though the recipient is local here.
    let hop = Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() });
    let s = with("relay", &format!("hop = \"{}\"\n", hop.smtp));
    from_daniel(&s);
    s.wait_for_queue();
    assert!(s.mailbox("tyler").is_empty());
    assert_eq!(hop.mailbox("tyler").len(), 1);
}
