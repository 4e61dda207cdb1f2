//! Sync input edge cases: a stray quote is reported where it opened and swallows nothing;
//! a repeated id is reported with both lines; line numbers stay right after blank lines
//! and CRLF; odd bytes and deep JSON are row errors, never a crash; and a property test
//! over random CSV.

use keel::sync::{AccountField, ContactField, EventField, MAX_QUOTED_LINES, MAX_ROW_BYTES};
use proptest::prelude::*;

use crate::util::{Workspace, CRM_CONFIG};

/// The error lines of a report, as `keel sync` prints them (without the file name).
fn errors(report: &keel::sync::SyncReport) -> String {
    report.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_stray_quote_is_reported_where_it_opened_and_the_rows_after_it_land() {
    let ws = Workspace::new(CRM_CONFIG);
    // Line 3's quote pairs with the quote that opens line 7's name: before, rows 3 to 7 came
    // back as one "row has 4 cells" and ACC-3..ACC-6 were lost.
    ws.write(
        "accounts.csv",
        "\
Account ID,Account Name,ARR
ACC-1,One,1
ACC-2,\"Two,2
ACC-3,Three,3
ACC-4,Four,4
ACC-5,Five,5
ACC-6,\"Six, Inc.\",6
ACC-7,\"Seven
has notes\",7
ACC-8,\"Eight,8
",
    );
    let run = ws.keel(&["sync", "accounts", "accounts.csv"]);
    assert_eq!(run.code(), 65, "{}", run.stderr());
    assert!(run.stdout().contains("6 inserted, 0 updated, 0 unchanged, 2 rejected"), "{}", run.stdout());
    insta::assert_snapshot!(run.stderr(), @r#"
      accounts.csv:3:2: column "Account Name": a quote opened here is never closed (the field runs over 4 line ends, to a quote on line 7 that has other text right after it); reading went on from line 4
      accounts.csv:10:2: column "Account Name": a quote opened here is never closed (the field runs over 1 line ends, to the end of the file); reading went on from line 11
      warning: mapped column(s) not in the header, so this file set nothing for them: "Segment", "CSM", "Manager", "Renewal Date", "Start", "Stage", "TZ", "Logins (30d)", "NPS" (sync.accounts.columns)
    error: 2 row(s) rejected; the other 6 row(s) were stored
    "#);
    let store = ws.store();
    for id in ["ACC-1", "ACC-3", "ACC-4", "ACC-5", "ACC-6", "ACC-7"] {
        assert!(store.account(id).unwrap().is_some(), "{id} was imported");
    }
    assert_eq!(store.account("ACC-6").unwrap().unwrap().name, "Six, Inc.");
    assert_eq!(store.account("ACC-7").unwrap().unwrap().name, "Seven\nhas notes", "a real multi-line cell stays");
    assert!(store.account("ACC-2").unwrap().is_none());
}

#[test]
fn a_quote_that_runs_past_the_limit_is_cut_off_there() {
    let ws = Workspace::new(CRM_CONFIG);
    // No other quote in the file: the field would run to the end.
    let mut body = String::from("Account ID,Account Name,ARR\nOPEN,\"Never closed,1\n");
    for i in 0..MAX_QUOTED_LINES + 50 {
        body.push_str(&format!("ACC-{i},Name {i},{i}\n"));
    }
    ws.write("accounts.csv", &body);
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected), (MAX_QUOTED_LINES + 50, 1), "{report}");
    assert_eq!(
        errors(&report),
        "2:2: column \"Account Name\": a quote opened here is never closed (the field runs over more than 100 \
         lines or 64 KiB); reading went on from line 3"
    );
}

#[test]
fn a_runaway_row_is_cut_at_the_row_limit_not_read_whole() {
    let ws = Workspace::new(CRM_CONFIG);
    let big = (MAX_ROW_BYTES + (1 << 20)) as usize;
    // A stray quote and no quote after it for more than the row limit, in lines too long
    // to be rows; and one line longer than the limit.
    let mut stray = String::from("Account ID,Account Name,ARR\nS,\"stray,1\n");
    for _ in 0..big / (1 << 20) {
        stray.push_str(&"x".repeat(1 << 20));
        stray.push('\n');
    }
    stray.push_str("G,Good,1\n");
    ws.write("stray.csv", &stray);
    ws.write("long.csv", &format!("Account ID,Account Name,ARR\nL,{},1\nH,Good,2\n", "y".repeat(big)));
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "stray.csv", |c| &c.sync.accounts);
    assert_eq!(report.inserted, 1, "{}", errors(&report));
    assert!(report.errors[0]
        .to_string()
        .starts_with("2:2: column \"Account Name\": a quote opened here is never closed"));
    let report = ws.sync::<AccountField>(&store, "long.csv", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected), (1, 1));
    assert_eq!(
        errors(&report),
        "2: row is longer than 16 MiB, which no export writes; reading went on from the next line"
    );
    assert!(store.account("G").unwrap().is_some() && store.account("H").unwrap().is_some());
}

#[test]
fn a_legit_notes_cell_of_many_lines_is_kept_whole() {
    let ws = Workspace::new(CRM_CONFIG);
    let notes = (1..=MAX_QUOTED_LINES).map(|i| format!("note {i}, with a comma")).collect::<Vec<_>>().join("\n");
    ws.write("accounts.csv", &format!("Account ID,Notes,ARR\nA,\"{notes}\",1\nB,,2\n"));
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected), (2, 0), "{}", errors(&report));
    assert_eq!(store.account("A").unwrap().unwrap().fields["Notes"], notes.as_str());
}

#[test]
fn a_quote_that_closes_cleanly_in_a_row_too_wide_rejects_that_row_and_names_the_quote() {
    let ws = Workspace::new(CRM_CONFIG);
    // Either a notes cell in a row with one cell too many, or a stray quote that pairs
    // with one closing a cell three lines down: reading lines 3-4 as rows could import a
    // note's lines as accounts, so the row is rejected whole and the report says where.
    ws.write("accounts.csv", "Account ID,Account Name,ARR\nA,\"Call, then\nB, bid\nC, sale\",1,x\nD,Dee,4\n");
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected), (1, 1), "{}", errors(&report));
    assert_eq!(
        errors(&report),
        "2: row has 4 cells; the header has 3 (the quote that opens cell 2 on line 2 closes on line 4; if it is \
         stray, lines 3 to 4 were read into this row and not imported)"
    );
    assert!(store.account("B").unwrap().is_none(), "no account made of a note's line");
    assert!(store.account("D").unwrap().is_some());
}

#[test]
fn a_row_with_too_many_cells_says_which_cell_holds_a_quote() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("accounts.csv", "Account ID,Account Name,ARR\nA,Bad \"Quote, Inc.\",1\nB,Fine,2\nC,\"Open");
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected), (1, 2));
    assert_eq!(
        errors(&report),
        "2: row has 4 cells; the header has 3 (cell 2 holds a quote that is not at its start, so it quotes \
         nothing: put the whole cell in quotes)\n\
         4: row has 2 cells; the header has 3 (the quote that opens cell 2 is never closed)"
    );
}

/// The same export with LF and with CRLF line ends: a blank line, a notes cell over three
/// lines, a bad cell after the notes in the same row, and bad cells on known lines.
fn export(end: &str) -> String {
    [
        "Account ID,Notes,ARR,Renewal Date",
        "A,,1,2027-01-01",
        "",
        "B,,x,2027-01-01",
        "C,\"call Ana",
        "then Bo",
        "then sign\",y,2027-01-01",
        "D,\"short, quoted\",4,2027-13-01",
        "E,,5,2027-01-01",
        "F,,z,2027-01-01",
        "",
    ]
    .join(end)
}

#[test]
fn line_numbers_are_the_editors_with_lf_and_crlf_line_ends() {
    let ws = Workspace::new(&CRM_CONFIG.replace("  accounts:\n", "  accounts:\n    on_bad_value: reject_row\n"));
    ws.write("lf.csv", &export("\n"));
    ws.write("crlf.csv", &export("\r\n"));
    // A notes cell with CRLF inside it in an LF file, and the other way round.
    ws.write("mixed.csv", "Account ID,Notes,ARR\nA,\"two\r\nlines\",x\nB,,y\n");
    ws.write("mixed2.csv", "Account ID,Notes,ARR\r\nA,\"two\nlines\",x\r\nB,,y\r\n");
    let store = ws.store();
    // Line 7 holds C's ARR "y": the cell is on its own line, not its row's first (5).
    let want = "4:3: column \"ARR\": expected a number, found \"x\"\n\
                7:3: column \"ARR\": expected a number, found \"y\"\n\
                8:4: column \"Renewal Date\": invalid date \"2027-13-01\": expected YYYY-MM-DD (or set date_format for \
                this source or column)\n\
                10:3: column \"ARR\": expected a number, found \"z\"";
    for file in ["lf.csv", "crlf.csv"] {
        let report = ws.sync::<AccountField>(&store, file, |c| &c.sync.accounts);
        assert_eq!(errors(&report), want, "{file}");
        assert_eq!((report.stored(), report.rejected), (2, 4), "{file}");
    }
    for file in ["mixed.csv", "mixed2.csv"] {
        let report = ws.sync::<AccountField>(&store, file, |c| &c.sync.accounts);
        assert_eq!(
            errors(&report),
            "3:3: column \"ARR\": expected a number, found \"x\"\n4:3: column \"ARR\": expected a number, found \"y\"",
            "{file}"
        );
    }
    // And as `keel sync` prints it: file:line:column.
    drop(store);
    let run = ws.keel(&["sync", "accounts", "crlf.csv"]);
    assert!(run.stderr().contains("  crlf.csv:7:3: column \"ARR\""), "{}", run.stderr());
}

#[test]
fn a_repeated_id_is_reported_with_both_lines_and_both_rows_apply_in_order() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write(
        "accounts.csv",
        "Account ID,Account Name,ARR\nACC-1,First,1\nACC-2,Two,2\nACC-1,,10\nACC-1,Third,\nACC-2,Two,2\n",
    );
    let run = ws.keel(&["sync", "accounts", "accounts.csv"]);
    assert_eq!(run.code(), 0, "a repeat is reported, not rejected: {}", run.stderr());
    assert!(
        run.stdout().contains("2 inserted, 2 updated, 1 unchanged, 0 rejected, 3 repeated ids"),
        "{}",
        run.stdout()
    );
    insta::assert_snapshot!(run.stderr(), @r#"
    accounts.csv:4: id "ACC-1" repeats line 2: both rows were applied, in file order, so this row's values win where both rows carry one
    accounts.csv:5: id "ACC-1" repeats line 2: both rows were applied, in file order, so this row's values win where both rows carry one
    accounts.csv:6: id "ACC-2" repeats line 3: both rows were applied, in file order, so this row's values win where both rows carry one
    warning: mapped column(s) not in the header, so this file set nothing for them: "Segment", "CSM", "Manager", "Renewal Date", "Start", "Stage", "TZ", "Logins (30d)", "NPS" (sync.accounts.columns)
    "#);
    let store = ws.store();
    let acc1 = store.account("ACC-1").unwrap().unwrap();
    assert_eq!((acc1.name.as_str(), acc1.arr), ("Third", Some(10.0)), "each row applied over the one before");
    drop(store);
    // Fewer lines printed than there are repeats: the rest are counted, not hidden.
    let run = ws.keel(&["sync", "accounts", "accounts.csv", "--max-errors", "1"]);
    assert!(
        run.stderr().contains("… and more: 0 rejected row(s), 0 value(s) left out and 3 repeated id(s) in all"),
        "{}",
        run.stderr()
    );
}

#[test]
fn repeated_contacts_are_reported_and_a_repeated_event_is_not() {
    let ws = Workspace::new(CRM_CONFIG);
    // Keyed by email alone: the lower-cased email is the id, so a case change is a repeat.
    ws.write("contacts.csv", "email,account_id,name\nana@x.example,A,Ana\nANA@x.example,A,Ana S.\n");
    ws.write(
        "events.ndjson",
        "{\"messageId\":\"m1\",\"accountId\":\"A\",\"event\":\"Login\",\"timestamp\":\"2026-11-20T14:03:11Z\"}\n\
         {\"messageId\":\"m1\",\"accountId\":\"A\",\"event\":\"Login\",\"timestamp\":\"2026-11-20T14:03:11Z\"}\n",
    );
    let store = ws.store();
    let contacts = ws.sync::<ContactField>(&store, "contacts.csv", |c| &c.sync.contacts);
    assert_eq!((contacts.inserted, contacts.updated, contacts.repeated), (1, 1, 1), "{contacts}");
    assert!(errors(&contacts).starts_with("3: id \"ana@x.example\" repeats line 2"), "{}", errors(&contacts));
    let events = ws.sync::<EventField>(&store, "events.ndjson", |c| &c.sync.events);
    assert_eq!(
        (events.inserted, events.unchanged, events.repeated),
        (1, 1, 0),
        "an event delivered twice is one event"
    );
    assert!(events.errors.is_empty());
}

#[test]
fn a_json_line_that_is_not_utf8_is_rejected_alone() {
    let ws = Workspace::new(CRM_CONFIG);
    let path = ws.path("accounts.ndjson");
    std::fs::write(&path, b"{\"id\":\"A\"}\n{\"id\":\"\xff\"}\n{\"id\":\"B\"}\n{\"id\":\"C\"}\n").unwrap();
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.ndjson", |c| &c.sync.accounts);
    // Before, the line after the bad one was read as "the rest" of it and dropped.
    assert_eq!((report.inserted, report.rejected), (3, 1), "{report}");
    assert_eq!(errors(&report), "2: line is not valid UTF-8 text (from byte 8 on)");
    assert!(store.account("B").unwrap().is_some());
}

#[test]
fn deep_or_broken_json_is_an_error_with_its_place_not_a_crash() {
    let ws = Workspace::new(CRM_CONFIG);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    ws.write("deep.ndjson", &format!("{{\"id\":\"A\"}}\n{{\"id\":\"B\",\"x\":{deep}}}\n{{\"id\":\"C\"}}\n"));
    ws.write("deep.json", &format!("[{{\"id\":\"A\"}},\n {{\"id\":\"B\",\"x\":{deep}}},\n {{\"id\":\"C\"}}]"));
    std::fs::write(ws.path("latin1.json"), b"[{\"id\":\"A\"},\n {\"id\":\"Caf\xe9\"}]").unwrap();
    let store = ws.store();
    let lines = ws.sync::<AccountField>(&store, "deep.ndjson", |c| &c.sync.accounts);
    assert_eq!((lines.inserted, lines.rejected), (2, 1));
    assert_eq!(errors(&lines), "2: invalid JSON at column 141: recursion limit exceeded");
    let array = ws.sync::<AccountField>(&store, "deep.json", |c| &c.sync.accounts);
    assert_eq!((array.unchanged, array.rejected), (2, 1));
    assert_eq!(errors(&array), "2: invalid JSON in element 2 at column 142: recursion limit exceeded");

    let config = ws.config();
    let err =
        keel::sync::sync_file(&store, &ws.path("latin1.json"), &config.sync.accounts.spec, crate::util::now(), &())
            .unwrap_err();
    assert!(err.to_string().ends_with("not valid UTF-8 text at line 2 column 12; nothing was imported"), "{err}");
}

#[test]
fn a_header_of_100k_columns_is_checked_and_a_late_duplicate_named() {
    let ws = Workspace::new(CRM_CONFIG);
    let mut header: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    header.insert(0, "Account ID".into());
    header.push("c42".into());
    ws.write("wide.csv", &format!("{}\nA\n", header.join(",")));
    let run = ws.keel(&["sync", "accounts", "wide.csv"]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("wide.csv: columns 44 and 100002 are both named \"c42\""), "{}", run.stderr());
}

/// One generated CSV line: a good row (id and plain text, no quote), or junk of any bytes
/// but a line end (quotes, commas, `\r`, a BOM, invalid UTF-8).
#[derive(Debug, Clone)]
enum Line {
    Good(String),
    Junk(Vec<u8>),
}

fn line() -> impl Strategy<Value = Line> {
    let good = "[^\",\r\n\u{feff}]{0,12}".prop_map(Line::Good);
    let junk_byte = prop_oneof![
        4 => Just(b'"'),
        3 => Just(b','),
        1 => Just(b'\r'),
        1 => Just(0xff),
        1 => Just(0xef), // the first byte of a BOM
        6 => any::<u8>().prop_filter("no line end", |b| *b != b'\n'),
    ];
    let junk = prop_oneof![
        proptest::collection::vec(junk_byte, 0..16),
        Just("\u{feff}".as_bytes().to_vec()),
        Just(b"\"".to_vec()),
    ]
    .prop_map(Line::Junk);
    prop_oneof![3 => good, 2 => junk]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever the bytes: no panic, every rejected row names a line of the file, and a
    /// good row survives any junk line but one that pairs its stray quote with a later
    /// one (a cell may legitimately run over lines, so that pairing can look right).
    #[test]
    fn random_csv_never_panics_and_loses_no_good_row(lines in proptest::collection::vec(line(), 1..40), crlf: bool) {
        let ws = Workspace::new(CRM_CONFIG);
        let end: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut body = b"Account ID,Account Name".to_vec();
        body.extend_from_slice(end);
        let mut good = Vec::new();
        let mut quoted_lines = 0;
        for (i, l) in lines.iter().enumerate() {
            match l {
                Line::Good(name) => {
                    let id = format!("G-{i}");
                    body.extend_from_slice(format!("{id},{name}").as_bytes());
                    good.push((id, name.trim().to_string()));
                }
                Line::Junk(bytes) => {
                    quoted_lines += usize::from(bytes.contains(&b'"'));
                    body.extend_from_slice(bytes);
                }
            }
            body.extend_from_slice(end);
        }
        std::fs::write(ws.path("random.csv"), &body).unwrap();
        let store = ws.store();
        let config = ws.config();
        let report = keel::sync::sync_file(&store, &ws.path("random.csv"), &config.sync.accounts.spec, crate::util::now(), &())
            .expect("a random file is rows to report, not a failure");
        // Lines as an editor counts them: a junk `\r` alone ends a line too.
        let last_line = body
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\r' || (b == b'\n' && (i == 0 || body[i - 1] != b'\r')))
            .count() as u64;
        for e in &report.errors {
            prop_assert!((2..=last_line).contains(&e.line), "{e} names no line of the file");
        }
        // With at most one junk line holding quotes, its quote has nothing to pair with.
        if quoted_lines <= 1 {
            for (id, name) in &good {
                let account = store.account(id).unwrap();
                prop_assert!(account.is_some(), "{id} lost; errors: {:?}", report.errors);
                if !name.is_empty() {
                    prop_assert_eq!(&account.unwrap().name, name);
                }
            }
        }
    }
}

/// One generated row: a notes cell of `notes` lines (quoted when more than one), and
/// whether its ARR cell (after the notes) is bad.
fn rows() -> impl Strategy<Value = Vec<(usize, bool)>> {
    proptest::collection::vec((1usize..4, any::<bool>()), 1..30)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the mix of LF and CRLF (between rows and inside notes cells) and of
    /// multi-line cells, a bad cell is reported on the line an editor shows it on.
    #[test]
    fn a_bad_cell_is_reported_on_its_own_line(rows in rows(), crlf_rows: bool, crlf_cells: bool) {
        let ws = Workspace::new(&CRM_CONFIG.replace("  accounts:\n", "  accounts:\n    on_bad_value: reject_row\n"));
        let (end, inner) = (if crlf_rows { "\r\n" } else { "\n" }, if crlf_cells { "\r\n" } else { "\n" });
        let mut body = format!("Account ID,Notes,ARR{end}");
        let (mut line, mut want) = (2u64, Vec::new());
        for (i, &(notes, bad)) in rows.iter().enumerate() {
            let cell = if notes == 1 {
                "one line".to_string()
            } else {
                format!("\"{}\"", (0..notes).map(|n| format!("note {n}, ok")).collect::<Vec<_>>().join(inner))
            };
            let arr_line = line + notes as u64 - 1;
            if bad {
                want.push(format!("{arr_line}:3: column \"ARR\": expected a number, found \"bad\""));
            }
            body.push_str(&format!("R-{i},{cell},{}{end}", if bad { "bad" } else { "1" }));
            line = arr_line + 1;
        }
        std::fs::write(ws.path("rows.csv"), &body).unwrap();
        let store = ws.store();
        let report = ws.sync::<AccountField>(&store, "rows.csv", |c| &c.sync.accounts);
        prop_assert_eq!(errors(&report), want.join("\n"));
        prop_assert_eq!(report.stored() + report.rejected, rows.len() as u64);
    }
}

#[test]
fn old_mac_cr_line_ends_are_counted_like_lf() {
    let ws = Workspace::new(&CRM_CONFIG.replace("  accounts:\n", "  accounts:\n    on_bad_value: reject_row\n"));
    // The csv crate counts only `\n`, so every row of this file was reported on line 1.
    ws.write("cr.csv", &export("\r"));
    ws.write("stray.csv", "Account ID,Account Name,ARR\rA,\"Open,1\rB,Bee,x\r");
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "cr.csv", |c| &c.sync.accounts);
    assert_eq!(
        errors(&report),
        "4:3: column \"ARR\": expected a number, found \"x\"\n\
         7:3: column \"ARR\": expected a number, found \"y\"\n\
         8:4: column \"Renewal Date\": invalid date \"2027-13-01\": expected YYYY-MM-DD (or set date_format for \
         this source or column)\n\
         10:3: column \"ARR\": expected a number, found \"z\""
    );
    let report = ws.sync::<AccountField>(&store, "stray.csv", |c| &c.sync.accounts);
    assert_eq!(
        errors(&report),
        "2:2: column \"Account Name\": a quote opened here is never closed (the field runs over 2 line ends, to the \
         end of the file); reading went on from line 3\n\
         3:3: column \"ARR\": expected a number, found \"x\""
    );
}
