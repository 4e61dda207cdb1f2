//! `keel preview` shows what the playbook's action would send, for every shipped
//! template: the recipient the playbook names (the manager for escalations, the owner for
//! renewals, a contact for customer mail), the unsubscribe headers of customer mail, the
//! figures as people read them, and a clear error when a contact is needed.

use std::fs;
use std::path::Path;

use keel::model::{Band, HealthPoint};

use crate::util::{copy_tree, Workspace, CRM_CONFIG};

/// Each shipped template and who its playbook sends it to (`None`: the contacts).
const SHIPPED: &[(&str, Option<&str>)] = &[
    ("at_risk_digest", Some("mo@keel.example")),
    ("churn_risk_escalation", Some("mo@keel.example")),
    ("red_save_plan", Some("mo@keel.example")),
    ("renewal_30", Some("ana@keel.example")),
    ("renewal_60", Some("ana@keel.example")),
    ("renewal_90", Some("ana@keel.example")),
    ("smb_nudge", None),
    ("smb_webinar", None),
    ("smb_welcome", None),
];

/// The shipped playbooks and rules over one red account with a contact.
fn shipped_book() -> Workspace {
    let ws = Workspace::new(CRM_CONFIG);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(&repo.join("playbooks"), &ws.path("playbooks"));
    copy_tree(&repo.join("rules"), &ws.path("rules"));
    ws.write(
        "accounts.csv",
        "Account ID,Account Name,Segment,ARR,CSM,Manager,Renewal Date,Stage\n\
         A-1,Acme Analytics,SMB,109900,ana@keel.example,mo@keel.example,2026-12-24,renewal\n",
    );
    ws.write("contacts.csv", "Contact ID,Account,email,name,Opt Out\nC-1,A-1,kim@acme.example,Kim,no\n");
    ws.keel(&["sync", "accounts", "accounts.csv"]).ok();
    ws.keel(&["sync", "contacts", "contacts.csv"]).ok();
    let store = ws.store();
    let components = [("engagement".to_string(), Some(31.0)), ("support".to_string(), None)].into_iter().collect();
    let point = HealthPoint { date: "2026-11-30".parse().unwrap(), score: 42.25, band: Band::Red, components };
    store.record_health(&[("A-1", &point)]).unwrap();
    ws
}

#[test]
fn every_shipped_template_previews_for_the_recipient_its_playbook_names() {
    let ws = shipped_book();
    let mut shipped: Vec<String> = fs::read_dir(ws.path("playbooks/templates"))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    shipped.sort();
    shipped.dedup();
    assert_eq!(shipped, SHIPPED.iter().map(|(t, _)| t.to_string()).collect::<Vec<_>>(), "every template is covered");

    for (template, to) in SHIPPED {
        let out = match to {
            Some(to) => {
                let out = ws.keel(&["preview", template, "--account", "A-1"]).ok();
                assert!(out.contains(&format!("\nTo: {to}\n")), "{template} goes where its playbook says:\n{out}");
                assert!(!out.contains("List-Unsubscribe"), "internal mail has no unsubscribe header:\n{out}");
                out
            }
            None => {
                let needs = ws.keel(&["preview", template, "--account", "A-1"]);
                assert_eq!(needs.code(), 1, "{template}");
                let err = needs.stderr();
                assert!(err.contains("--contact") && err.contains("kim@acme.example"), "{template}: {err}");
                assert!(!err.contains("undefined value"), "{err}");
                let out = ws.keel(&["preview", template, "--account", "A-1", "--contact", "Kim@acme.example"]).ok();
                assert!(out.contains("\nTo: kim@acme.example\n"), "{out}");
                assert!(out.contains("Hi Kim,"), "the contact is the recipient: {out}");
                let url = out.lines().find_map(|l| l.strip_prefix("List-Unsubscribe: <")).expect("the header");
                assert!(url.ends_with('>') && url.contains("token="), "{url}");
                assert!(out.contains("\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n"), "{out}");
                let eml = format!("{template}.eml");
                ws.keel(&["preview", template, "--account", "A-1", "--contact", "kim@acme.example", "-o", &eml]).ok();
                let eml = fs::read_to_string(ws.path(&eml)).unwrap();
                assert!(eml.contains("List-Unsubscribe: <") && eml.contains("List-Unsubscribe=One-Click"), "{eml}");
                out
            }
        };
        assert!(!out.contains("109900") && !out.contains(".0 ") && !out.contains("2026-12-24"), "{template}:\n{out}");
    }
    let renewal = ws.keel(&["preview", "renewal_30", "--account", "A-1"]).ok();
    assert!(renewal.contains("renews on Dec 24, 2026 (ARR $109,900)"), "{renewal}");
    let digest = ws.keel(&["preview", "at_risk_digest", "--account", "A-1"]).ok();
    assert!(digest.contains("in a digest") && digest.contains("1 at-risk account this week"), "{digest}");
}

#[test]
fn red_save_plan_preview_is_the_managers_mail_with_readable_figures() {
    let ws = shipped_book();
    let out = ws.keel(&["preview", "red_save_plan", "--account", "A-1"]).ok();
    insta::assert_snapshot!(out);
}

#[test]
fn preview_refuses_a_contact_for_internal_mail_and_an_unknown_playbook_in_words() {
    let ws = shipped_book();
    let internal = ws.keel(&["preview", "red_save_plan", "--account", "A-1", "--contact", "kim@acme.example"]);
    assert_eq!(internal.code(), 1);
    assert!(internal.stderr().contains("not to contacts: drop --contact"), "{}", internal.stderr());
    let other = ws.keel(&["preview", "red_save_plan", "--account", "A-1", "--playbook", "renewal-30"]);
    assert_eq!(other.code(), 1);
    assert!(other.stderr().contains("it is sent by: red-save-plan"), "{}", other.stderr());
    let picked = ws.keel(&["preview", "red_save_plan", "--account", "A-1", "--playbook", "red-save-plan"]).ok();
    assert!(picked.contains("Playbook: red-save-plan (internal mail, in a digest)"), "{picked}");
    let stranger = ws.keel(&["preview", "smb_welcome", "--account", "A-1", "--contact", "who@else.example"]);
    assert!(stranger.stderr().contains("has no contact with the address who@else.example"), "{}", stranger.stderr());
}
