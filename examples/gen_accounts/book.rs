//! A deterministic, realistic book of business: accounts (a CRM export), their contacts,
//! and 30 days of Segment-style product events.
//!
//! Invariants:
//! - Deterministic: every value of account `i` derives from `(seed, i)` alone, so the same
//!   arguments give the same bytes (on the same platform: ARR and a few metrics go through
//!   `powf`/`ln`, whose last bit is the platform's libm), and contacts and events of account
//!   `i` are generated without holding other accounts in memory — a million accounts stream.
//! - The files use the column names `examples/keel.yaml` maps, and only formats `keel sync`
//!   reads.
//! - Usage metrics follow a latent health per account, drawn so that the reference
//!   model (Engagement 40, Product 30, Relationship 20, Business 10) puts roughly half the
//!   book in green (≥ 80), 30% in yellow (60–79) and 20% in red (< 60).
//!
//! This file is also compiled into the integration tests (`#[path]`), so it stands alone.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use chrono::{Datelike, Duration, Months, NaiveDate};

#[derive(Debug, Clone)]
pub struct BookSpec {
    pub accounts: u64,
    pub seed: u64,
    /// The day the book is "exported": renewals fall in the year after it, events in the
    /// 30 days before it.
    pub today: NaiveDate,
    /// Mean number of events per account (healthier accounts generate more).
    pub events_per_account: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookCounts {
    pub accounts: u64,
    pub contacts: u64,
    pub events: u64,
}

/// Writes `accounts.csv`, `contacts.csv` and `events.ndjson` into `dir` (created if needed).
pub fn write_book(spec: &BookSpec, dir: &Path) -> io::Result<BookCounts> {
    fs::create_dir_all(dir)?;
    let open = |name: &str| File::create(dir.join(name)).map(|f| BufWriter::with_capacity(1 << 20, f));
    Ok(BookCounts {
        accounts: write_accounts(spec, open("accounts.csv")?)?,
        contacts: write_contacts(spec, open("contacts.csv")?)?,
        events: write_events(spec, open("events.ndjson")?)?,
    })
}

pub const ACCOUNTS_HEADER: &str = "Account ID,Account Name,Segment,ARR,CSM Email,CS Manager Email,Renewal Date,Contract Start,Lifecycle Stage,Time Zone,Industry,Region,Plan,Logins (30d),Active Users,Licensed Users,Avg Session (min),Open Tickets,Feature Adoption %,Workflow Completion %,Data Quality %,Integrations,Exec Sponsor Meetings (90d),QBRs Attended (12m),NPS,ROI Achieved %,Expansion Potential %";
pub const CONTACTS_HEADER: &str = "Contact ID,Account ID,Email,Full Name,Title,Time Zone,Email Opt Out";

pub fn write_accounts(spec: &BookSpec, mut out: impl Write) -> io::Result<u64> {
    writeln!(out, "{ACCOUNTS_HEADER}")?;
    let pools = Pools::new(spec.accounts);
    let mut line = String::with_capacity(512);
    for i in 0..spec.accounts {
        let a = Account::generate(spec, &pools, i);
        line.clear();
        a.write_csv(&mut line);
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(spec.accounts)
}

pub fn write_contacts(spec: &BookSpec, mut out: impl Write) -> io::Result<u64> {
    writeln!(out, "{CONTACTS_HEADER}")?;
    let pools = Pools::new(spec.accounts);
    let mut line = String::with_capacity(256);
    let mut count = 0;
    for i in 0..spec.accounts {
        let a = Account::generate(spec, &pools, i);
        let mut rng = Rng::for_account(spec.seed, i, 1);
        for j in 1..=a.contacts {
            let (first, last) = (pick(&mut rng, FIRST_NAMES), pick(&mut rng, LAST_NAMES));
            let title = if j == 1 { a.segment.first_title() } else { pick(&mut rng, TITLES) };
            let tz = if rng.f64() < 0.85 { a.timezone } else { pick_weighted(&mut rng, TIMEZONES).0 };
            let opted_out = rng.f64() < 0.04;
            line.clear();
            let _ = writeln!(
                line,
                "CON-{:07}-{j:02},ACC-{:07},{}.{}@{},{first} {last},{title},{tz},{opted_out}",
                i + 1,
                i + 1,
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase().replace(['\'', ' '], ""),
                a.domain
            );
            out.write_all(line.as_bytes())?;
            count += 1;
        }
    }
    out.flush()?;
    Ok(count)
}

pub fn write_events(spec: &BookSpec, mut out: impl Write) -> io::Result<u64> {
    let pools = Pools::new(spec.accounts);
    let end = spec.today.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    let window_secs = 30 * 86_400;
    let mut line = String::with_capacity(256);
    let mut count = 0;
    for i in 0..spec.accounts {
        let a = Account::generate(spec, &pools, i);
        let mut rng = Rng::for_account(spec.seed, i, 2);
        // Healthier accounts are busier; the mean over the book stays near the spec's.
        let n = (spec.events_per_account * (a.health / 74.0) * 2.0 * rng.f64()) as u64;
        for k in 1..=n {
            let at = end - Duration::seconds(1 + rng.below(window_secs) as i64);
            let name = pick_weighted(&mut rng, EVENTS).0;
            line.clear();
            let _ = write!(line, "{{\"messageId\":\"evt-{:07}-{k:04}\",\"accountId\":\"ACC-{:07}\"", i + 1, i + 1);
            if rng.f64() >= 0.10 {
                let _ = write!(line, ",\"userId\":\"CON-{:07}-{:02}\"", i + 1, 1 + rng.below(a.contacts));
            }
            let _ = write!(
                line,
                ",\"event\":\"{name}\",\"timestamp\":\"{}\",\"properties\":",
                at.format("%Y-%m-%dT%H:%M:%SZ")
            );
            match name {
                "Feature Used" => {
                    let _ = write!(line, "{{\"feature\":\"{}\"}}", pick(&mut rng, FEATURES));
                }
                "Support Ticket Opened" => {
                    let p = if rng.f64() < 0.25 { "high" } else { "normal" };
                    let _ = write!(line, "{{\"priority\":\"{p}\"}}");
                }
                "Exported Data" => {
                    let _ = write!(line, "{{\"format\":\"{}\"}}", if rng.f64() < 0.5 { "csv" } else { "xlsx" });
                }
                _ => line.push_str("{}"),
            }
            line.push_str("}\n");
            out.write_all(line.as_bytes())?;
            count += 1;
        }
    }
    out.flush()?;
    Ok(count)
}

/// SplitMix64: tiny, fast, and fixed forever, unlike a crate's generator whose output may
/// change between versions.
pub struct Rng(u64);

impl Rng {
    /// An independent stream per account and purpose (`salt`), so each file can be written
    /// alone.
    pub fn for_account(seed: u64, index: u64, salt: u64) -> Rng {
        let mut r = Rng(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Roughly normal noise (Irwin–Hall of four uniforms), mean 0, standard deviation `sd`.
    pub fn noise(&mut self, sd: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.f64()).sum::<f64>() - 2.0;
        s * sd * 1.732
    }

    /// Log-uniform in [lo, hi]: most accounts small, a long tail of large ones.
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo * (hi / lo).powf(self.f64())
    }
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

fn pick_weighted<T: Copy>(rng: &mut Rng, items: &[(T, u32)]) -> (T, u32) {
    let total: u32 = items.iter().map(|i| i.1).sum();
    let mut x = rng.below(u64::from(total)) as u32;
    for &item in items {
        if x < item.1 {
            return item;
        }
        x -= item.1;
    }
    items[items.len() - 1]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Enterprise,
    MidMarket,
    Smb,
}

impl Segment {
    fn label(self) -> &'static str {
        match self {
            Segment::Enterprise => "Enterprise",
            Segment::MidMarket => "Mid-Market",
            Segment::Smb => "SMB",
        }
    }
    fn first_title(self) -> &'static str {
        match self {
            Segment::Enterprise => "Executive Sponsor",
            Segment::MidMarket => "VP Operations",
            Segment::Smb => "Founder",
        }
    }
}

/// CSM and manager pools, sized from the book: one CSM per ~8 enterprise, ~15 mid-market
/// or ~200 SMB accounts (most SMB accounts are pooled with the digital CS team), and one
/// manager per six CSMs.
pub struct Pools {
    enterprise: u64,
    mid_market: u64,
    smb: u64,
}

impl Pools {
    pub fn new(accounts: u64) -> Pools {
        let n = accounts as f64;
        Pools {
            enterprise: ((n * 0.10 / 8.0) as u64).max(2),
            mid_market: ((n * 0.30 / 15.0) as u64).max(2),
            smb: ((n * 0.60 * 0.3 / 200.0) as u64).max(1),
        }
    }

    /// The global number of a CSM (enterprise CSMs first, then mid-market, then SMB).
    fn csm(&self, segment: Segment, rng: &mut Rng) -> u64 {
        match segment {
            Segment::Enterprise => rng.below(self.enterprise),
            Segment::MidMarket => self.enterprise + rng.below(self.mid_market),
            Segment::Smb => self.enterprise + self.mid_market + rng.below(self.smb),
        }
    }
}

/// `first.last@keel-demo.example` for person number `k`; unique for every `k`.
fn person_email(k: u64, out: &mut String) {
    let (f, l) = (FIRST_NAMES.len() as u64, LAST_NAMES.len() as u64);
    let first = FIRST_NAMES[(k % f) as usize].to_ascii_lowercase();
    // (k mod f, 17·(k mod f) + k div f) is a bijection on k < f·l when 17·f + 1 ≡ 1 (mod l),
    // as with 40 and 40: small pools still get varied surnames.
    let last = LAST_NAMES[((17 * (k % f) + k / f) % l) as usize].to_ascii_lowercase().replace(['\'', ' '], "");
    let _ = write!(out, "{first}.{last}");
    if k >= f * l {
        let _ = write!(out, "{}", k / (f * l) + 1);
    }
    out.push_str("@keel-demo.example");
}

/// One account, derived from `(seed, index)`.
pub struct Account {
    pub index: u64,
    pub name: String,
    pub domain: String,
    pub segment: Segment,
    pub arr: u64,
    pub csm: String,
    pub manager: String,
    pub renewal: NaiveDate,
    pub start: NaiveDate,
    pub stage: &'static str,
    pub timezone: &'static str,
    pub region: &'static str,
    pub industry: &'static str,
    pub plan: &'static str,
    /// The latent health the metrics were drawn around (0–100).
    pub health: f64,
    pub contacts: u64,
    metrics: [Option<f64>; 14],
}

impl Account {
    pub fn generate(spec: &BookSpec, pools: &Pools, i: u64) -> Account {
        let mut rng = Rng::for_account(spec.seed, i, 0);
        let segment = match rng.f64() {
            x if x < 0.10 => Segment::Enterprise,
            x if x < 0.40 => Segment::MidMarket,
            _ => Segment::Smb,
        };

        // Names: a fixed bijection over the first 2,400 indices keeps them unique there.
        let combos = (PREFIXES.len() * NOUNS.len()) as u64;
        let j = (i * 1237) % combos;
        let (prefix, noun) =
            (PREFIXES[(j % PREFIXES.len() as u64) as usize], NOUNS[(j / PREFIXES.len() as u64) as usize]);
        let form = pick(&mut rng, FORMS);
        let name = format!("{prefix} {noun}{form}");
        let mut domain = format!("{}{}", prefix.to_ascii_lowercase(), noun.to_ascii_lowercase());
        if i >= combos {
            let _ = write!(domain, "{}", i / combos + 1);
        }
        domain.push_str(".example");

        let arr = match segment {
            Segment::Enterprise => rng.log_uniform(150_000.0, 2_000_000.0),
            Segment::MidMarket => rng.log_uniform(25_000.0, 150_000.0),
            Segment::Smb => rng.log_uniform(1_200.0, 25_000.0),
        };
        let arr = ((arr / 100.0).round() * 100.0) as u64;

        let mut csm_number = pools.csm(segment, &mut rng);
        let mut csm = String::new();
        if segment == Segment::Smb && rng.f64() < 0.7 {
            // The pooled digital CS team reports to the first SMB CSM's manager, always.
            csm_number = pools.enterprise + pools.mid_market;
            csm.push_str("digital-cs@keel-demo.example");
        } else {
            person_email(csm_number, &mut csm);
        }
        let mut manager = String::new();
        // Managers are numbered after every CSM, so no one is their own manager.
        person_email(pools.enterprise + pools.mid_market + pools.smb + csm_number / 6, &mut manager);

        let new_customer = rng.f64() < 0.08;
        let (start, renewal) = if new_customer {
            // Skewed toward the last weeks (about a quarter in the last 7 days), as a
            // growing book is: the SMB welcome sequence has accounts in its first week.
            let days = rng.below(90);
            let start = spec.today - Duration::days((days * days / 90) as i64);
            (start, start + Months::new(12))
        } else {
            let renewal = spec.today + Duration::days(1 + rng.below(365) as i64);
            let years = 1 + rng.below(3) as u32;
            (renewal - Months::new(12 * years), renewal)
        };
        let days_in = (spec.today - start).num_days();
        let stage = if days_in < 90 {
            "onboarding"
        } else if (renewal - spec.today).num_days() <= 90 {
            "renewal"
        } else if days_in < 183 {
            "adoption"
        } else if days_in < 365 {
            "value_realization"
        } else {
            "expansion"
        };

        let (timezone, _) = pick_weighted(&mut rng, TIMEZONES);
        let region = match timezone.split('/').next().unwrap_or("") {
            "Europe" => "EMEA",
            "Asia" | "Australia" => "APAC",
            _ if timezone == "America/Sao_Paulo" => "LATAM",
            _ => "NA",
        };
        let industry = pick(&mut rng, INDUSTRIES);
        let plan = match segment {
            Segment::Enterprise => "Enterprise",
            Segment::MidMarket => {
                if rng.f64() < 0.6 {
                    "Business"
                } else {
                    "Growth"
                }
            }
            Segment::Smb => {
                if rng.f64() < 0.7 {
                    "Starter"
                } else {
                    "Growth"
                }
            }
        };

        // Latent health: 50% green, 30% yellow, 20% red; new customers lean lower.
        let band = rng.f64();
        let health = if band < 0.50 {
            rng.range(81.0, 97.0)
        } else if band < 0.80 {
            rng.range(62.0, 78.0)
        } else {
            rng.range(25.0, 57.0)
        };
        let metrics = Self::metrics(&mut rng, segment, health);
        let contacts = match segment {
            Segment::Enterprise => 5 + rng.below(8),
            Segment::MidMarket => 3 + rng.below(4),
            Segment::Smb => 1 + rng.below(3),
        };
        Account {
            index: i,
            name,
            domain,
            segment,
            arr,
            csm,
            manager,
            renewal,
            start,
            stage,
            timezone,
            region,
            industry,
            plan,
            health,
            contacts,
            metrics,
        }
    }

    /// Usage metrics around the latent health: each health category scores near it,
    /// and each metric is drawn from its category's score, with noise.
    fn metrics(rng: &mut Rng, segment: Segment, health: f64) -> [Option<f64>; 14] {
        let clamp = |v: f64, lo: f64, hi: f64| v.max(lo).min(hi);
        let category = |rng: &mut Rng| clamp(health + rng.noise(5.0), 0.0, 100.0);
        let (engagement, product, relationship, business) =
            (category(rng), category(rng), category(rng), category(rng));
        let round1 = |v: f64| (v * 10.0).round() / 10.0;

        let licensed = match segment {
            Segment::Enterprise => rng.log_uniform(200.0, 5000.0),
            Segment::MidMarket => rng.log_uniform(25.0, 300.0),
            Segment::Smb => rng.log_uniform(3.0, 30.0),
        }
        .round();
        // Full utilisation — the classic expansion signal — for a slice of thriving accounts.
        let utilisation = if engagement > 85.0 && rng.f64() < 0.3 {
            1.0
        } else {
            clamp(engagement / 100.0 * 0.95 + rng.noise(0.05), 0.05, 1.0)
        };
        let active = (licensed * utilisation).round().max(1.0);
        let logins = (active * (4.0 + engagement / 100.0 * 16.0) * rng.range(0.8, 1.2)).round();
        let session = round1(clamp(2.0 + engagement / 100.0 * 38.0 + rng.noise(3.0), 2.0, 45.0));
        let ticket_scale = match segment {
            Segment::Enterprise => 14.0,
            Segment::MidMarket => 6.0,
            Segment::Smb => 2.5,
        };
        let tickets = ((100.0 - engagement) / 100.0 * ticket_scale * rng.range(0.5, 1.5)).round();

        let adoption = round1(clamp(product + rng.noise(6.0), 0.0, 100.0));
        let workflow = round1(clamp(product + rng.noise(8.0), 0.0, 100.0));
        let quality = round1(clamp(55.0 + product * 0.45 + rng.noise(6.0), 0.0, 100.0));
        let max_integrations = match segment {
            Segment::Enterprise => 12.0,
            Segment::MidMarket => 8.0,
            Segment::Smb => 4.0,
        };
        let integrations = (product / 100.0 * max_integrations * rng.range(0.7, 1.1)).round();

        let (meetings_max, qbr_max) = match segment {
            Segment::Enterprise => (6.0, 4.0),
            Segment::MidMarket => (3.0, 2.0),
            Segment::Smb => (0.4, 0.0),
        };
        let meetings = (relationship / 100.0 * meetings_max * rng.range(0.6, 1.1)).round();
        let qbrs = (relationship / 100.0 * qbr_max * rng.range(0.6, 1.1)).round();
        let nps = clamp((relationship / 10.0 + rng.noise(1.2)).round(), 0.0, 10.0);
        let roi = round1(clamp(business * 1.2 + rng.noise(12.0), 0.0, 150.0));
        let expansion = round1(clamp(business + rng.noise(12.0), 0.0, 100.0));

        let mut m = [
            Some(logins),
            Some(active),
            Some(licensed),
            Some(session),
            Some(tickets),
            Some(adoption),
            Some(workflow),
            Some(quality),
            Some(integrations),
            Some(meetings),
            Some(qbrs),
            Some(nps),
            Some(roi),
            Some(expansion),
        ];
        // Real CRM exports have gaps: no survey answer (8%), and a few empty cells.
        if rng.f64() < 0.08 {
            m[11] = None;
        }
        for (k, slot) in m.iter_mut().enumerate() {
            // Licensed users stay: utilisation needs it.
            if k != 2 && rng.f64() < 0.02 {
                *slot = None;
            }
        }
        m
    }

    fn write_csv(&self, line: &mut String) {
        let name = if self.name.contains(',') { format!("\"{}\"", self.name) } else { self.name.clone() };
        let _ = write!(
            line,
            "ACC-{:07},{name},{},{},{},{},{},{},{},{},{},{},{}",
            self.index + 1,
            self.segment.label(),
            self.arr,
            self.csm,
            self.manager,
            self.renewal.format("%Y-%m-%d"),
            self.start.format("%Y-%m-%d"),
            self.stage,
            self.timezone,
            self.industry,
            self.region,
            self.plan,
        );
        for m in &self.metrics {
            line.push(',');
            if let Some(v) = m {
                if v.fract() == 0.0 {
                    let _ = write!(line, "{v:.0}");
                } else {
                    let _ = write!(line, "{v:.1}");
                }
            }
        }
        line.push('\n');
        debug_assert!(self.renewal.year() >= self.start.year());
    }
}

const PREFIXES: &[&str] = &[
    "Acme",
    "Northwind",
    "Bluepeak",
    "Cobalt",
    "Delta",
    "Evergreen",
    "Fairview",
    "Granite",
    "Harbor",
    "Ironwood",
    "Juniper",
    "Keystone",
    "Lakeshore",
    "Meridian",
    "Nimbus",
    "Oakridge",
    "Pinnacle",
    "Quantum",
    "Redwood",
    "Summit",
    "Tidewater",
    "Unity",
    "Vertex",
    "Westfield",
    "Yellowstone",
    "Zenith",
    "Atlas",
    "Beacon",
    "Crescent",
    "Driftwood",
    "Ember",
    "Falcon",
    "Glacier",
    "Horizon",
    "Indigo",
    "Jetstream",
    "Kestrel",
    "Lumen",
    "Mosaic",
    "Nova",
    "Orion",
    "Prairie",
    "Quarry",
    "Riverbend",
    "Sterling",
    "Trident",
    "Upland",
    "Vanguard",
    "Willow",
    "Xenon",
    "Yarrow",
    "Zephyr",
    "Aurora",
    "Boulder",
    "Cascade",
    "Dune",
    "Echo",
    "Fjord",
    "Grove",
    "Helix",
];
const NOUNS: &[&str] = &[
    "Logistics",
    "Health",
    "Analytics",
    "Retail",
    "Foods",
    "Energy",
    "Capital",
    "Labs",
    "Systems",
    "Media",
    "Robotics",
    "Freight",
    "Dental",
    "Learning",
    "Insurance",
    "Pharma",
    "Studios",
    "Networks",
    "Foundry",
    "Outfitters",
    "Partners",
    "Software",
    "Biotech",
    "Aerospace",
    "Hospitality",
    "Markets",
    "Motors",
    "Textiles",
    "Clinics",
    "Realty",
    "Security",
    "Telecom",
    "Travel",
    "Water",
    "Wellness",
    "Works",
    "Brewing",
    "Mobility",
    "Payments",
    "Agritech",
];
const FORMS: &[&str] = &["", "", "", " Inc.", " Group", " Co.", ", Inc.", " LLC", " Ltd"];
const FIRST_NAMES: &[&str] = &[
    "Ana", "Ben", "Chloe", "Diego", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kara", "Liam", "Maya", "Noah",
    "Olivia", "Priya", "Quinn", "Rafael", "Sofia", "Tomas", "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe", "Amir",
    "Bianca", "Carlos", "Dana", "Emeka", "Freya", "Gabriel", "Hannah", "Ivan", "Julia", "Kenji", "Lena", "Mateo",
    "Nadia",
];
const LAST_NAMES: &[&str] = &[
    "Lopez",
    "Smith",
    "Nguyen",
    "Garcia",
    "Muller",
    "Rossi",
    "Tanaka",
    "Kowalski",
    "Okafor",
    "Silva",
    "Johnson",
    "Dubois",
    "Novak",
    "Haddad",
    "Kim",
    "Larsen",
    "Patel",
    "Schmidt",
    "Cohen",
    "Moreau",
    "Santos",
    "Fischer",
    "Ivanova",
    "Murphy",
    "O'Brien",
    "Chen",
    "Andersson",
    "Costa",
    "Weber",
    "Yamamoto",
    "Khan",
    "Ramos",
    "Berg",
    "Fontaine",
    "Ortiz",
    "Petrov",
    "Quinn",
    "Reyes",
    "Sato",
    "Van Dijk",
];
const TITLES: &[&str] = &[
    "VP Operations",
    "Director of IT",
    "Admin",
    "Power User",
    "Champion",
    "CFO",
    "Head of Analytics",
    "Operations Manager",
    "Team Lead",
    "Procurement",
    "CTO",
    "Product Manager",
];
const INDUSTRIES: &[&str] =
    &["Software", "Healthcare", "Financial Services", "Retail", "Manufacturing", "Education", "Logistics", "Media"];
const TIMEZONES: &[(&str, u32)] = &[
    ("America/New_York", 25),
    ("America/Chicago", 12),
    ("America/Los_Angeles", 13),
    ("Europe/London", 10),
    ("Europe/Berlin", 8),
    ("Europe/Paris", 6),
    ("Asia/Tokyo", 6),
    ("Australia/Sydney", 5),
    ("Asia/Singapore", 5),
    ("America/Sao_Paulo", 10),
];
const EVENTS: &[(&str, u32)] = &[
    ("Logged In", 50),
    ("Feature Used", 15),
    ("Report Created", 10),
    ("Dashboard Shared", 6),
    ("Exported Data", 6),
    ("Support Ticket Opened", 6),
    ("Invited User", 4),
    ("Integration Connected", 3),
];
const FEATURES: &[&str] = &["dashboards", "alerts", "workflows", "api", "sso", "exports", "forecasting", "segments"];
