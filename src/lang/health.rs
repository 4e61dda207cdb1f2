//! The health model: weighted categories, as data (`rules/health.yaml`) and
//! Rhai (`rules/*.rhai`) that CS Ops can change.
//!
//! Invariants:
//! - Explainable: every score is stored with its per-category components.
//! - Missing inputs never masquerade as zero: a category that scores `()` is left out and
//!   its weight shared among the known ones; an account with no known category is unscored.
//! - Damped: an account leaves its band only when its score is past the band's edge by
//!   more than `damping.margin` points (hysteresis). With the previous day's band as the
//!   reference, re-scoring the same day is idempotent.
//! - Loading reports every error in the model and rule files at once, each with
//!   file:line:column; scoring compiles nothing.
//! - Without a `health.yaml` in the rules folder, the shipped reference model applies.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rhai::Dynamic;
use schemars::JsonSchema;
use serde::Deserialize;

use super::inputs::{Functions, Input, RuleText};
use super::script::{AccountScope, EvalError, Expression, Origin, ScriptEngine};
use crate::diagnostic::parse_yaml;
use crate::diagnostic::{read_source, yaml_key_position, Diagnostic};
use crate::model::{Account, Band, HealthPoint};

/// The shipped reference model, used when the rules folder has no `health.yaml`.
pub const BUILTIN_MODEL: &str = include_str!("../../rules/health.yaml");
pub const BUILTIN_RULES: &str = include_str!("../../rules/health.rhai");
const BUILTIN_DIR: &str = "<built-in>";

/// The health model file (`rules/health.yaml`): bands, damping and weighted categories.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawModel {
    /// Where the bands start: green at or above `green`, yellow at or above `yellow`, red below.
    bands: RawBands,
    /// How far past a band's edge a score must go before the account changes band.
    #[serde(default)]
    damping: RawDamping,
    /// The categories by name (at least one): each a weight and a Rhai score expression.
    #[schemars(extend("minProperties" = 1))]
    categories: BTreeMap<String, RawCategory>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBands {
    /// Scores at or above are green (0–100).
    #[schemars(example = 80, range(min = 0, max = 100))]
    green: f64,
    /// Scores at or above (and below `green`) are yellow; below, red.
    #[schemars(example = 60, range(min = 0, max = 100))]
    yellow: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDamping {
    /// Hysteresis, in score points (0–20; default 3).
    #[schemars(example = 3, range(min = 0, max = 20))]
    margin: f64,
}

impl Default for RawDamping {
    fn default() -> Self {
        RawDamping { margin: DEFAULT_MARGIN }
    }
}

/// Damping margin when the model does not set one, in score points.
pub const DEFAULT_MARGIN: f64 = 3.0;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    /// The category's share of the score, relative to the others' weights (positive).
    #[schemars(example = 40, extend("exclusiveMinimum" = 0))]
    weight: f64,
    /// A Rhai expression scoring the account 0–100, or `()` when it lacks the inputs; it
    /// may call the rules' functions (`engagement(account)`).
    #[schemars(example = &"engagement(account)")]
    score: String,
}

/// The schema of the health model file (`keel schema`).
pub fn model_schema() -> schemars::Schema {
    crate::model::schema::root::<RawModel>(
        "Keel health model",
        "The health model (rules/health.yaml): band thresholds, damping, and weighted categories scored by Rhai.",
    )
}

/// Band thresholds and damping: the pure part of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    /// Scores at or above are green.
    pub green: f64,
    /// Scores at or above (and below `green`) are yellow; below, red.
    pub yellow: f64,
    /// Hysteresis, in points.
    pub margin: f64,
}

impl Bands {
    /// The band of a score, without damping.
    pub fn raw(&self, score: f64) -> Band {
        if score >= self.green {
            Band::Green
        } else if score >= self.yellow {
            Band::Yellow
        } else {
            Band::Red
        }
    }

    /// The band of a score, given the band the account was in: it stays there while the
    /// score is within `margin` points outside the band's range.
    pub fn damped(&self, score: f64, previous: Option<Band>) -> Band {
        let raw = self.raw(score);
        let Some(previous) = previous else { return raw };
        let (low, high) = match previous {
            Band::Red => (f64::NEG_INFINITY, self.yellow),
            Band::Yellow => (self.yellow, self.green),
            Band::Green => (self.green, f64::INFINITY),
        };
        if score >= low - self.margin && score < high + self.margin {
            previous
        } else {
            raw
        }
    }
}

struct Category {
    name: String,
    weight: f64,
    score: Expression,
    /// What the score reads of the account, in order of first read.
    inputs: Vec<Input>,
}

pub struct HealthModel {
    /// The `health.yaml` in force (or `<built-in>/health.yaml`).
    pub file: PathBuf,
    pub bands: Bands,
    categories: Vec<Category>,
    /// Every text the model was loaded from (rule library, then `health.yaml`): what
    /// "the rules changed" and "the rules read the date" are judged on.
    pub sources: Vec<String>,
}

impl std::fmt::Debug for HealthModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthModel").field("file", &self.file).field("bands", &self.bands).finish_non_exhaustive()
    }
}

/// A category that could not be scored for one account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("health category {category}: {error}")]
pub struct ScoreError {
    pub category: String,
    pub error: EvalError,
}

impl HealthModel {
    /// Loads the rule library (`rules_dir/*.rhai`) into `engine`, then the model
    /// (`rules_dir/health.yaml`, or the built-in one), compiling every category. Returns
    /// every problem found, not just the first.
    pub fn load(engine: &mut ScriptEngine, rules_dir: &Path) -> Result<HealthModel, Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let mut sources = Vec::new();
        let mut rules = Vec::new();
        let model_path = rules_dir.join("health.yaml");
        let builtin = !model_path.is_file();
        if builtin {
            let origin = Origin::at(Path::new(BUILTIN_DIR).join("health.rhai"), 1, 1);
            engine.add_library(BUILTIN_RULES, origin).expect("the built-in health rules compile");
            sources.push(BUILTIN_RULES.to_string());
            rules.push(RuleText { file: Path::new(BUILTIN_DIR).join("health.rhai"), text: BUILTIN_RULES.to_string() });
        }
        for file in rule_files(rules_dir, &mut errors) {
            match read_source(&file) {
                Ok(text) => {
                    sources.push(text.clone());
                    let origin = Origin::at(file.clone(), 1, 1);
                    if let Err(e) = engine.add_library(&text, origin) {
                        errors.push(diagnostic(&file, e.position, e.message, &text));
                    }
                    rules.push(RuleText { file: file.clone(), text });
                }
                Err(e) => errors.push(plain(&file, format!("cannot read this rule file: {e}"))),
            }
        }
        let (file, text) = if builtin {
            (Path::new(BUILTIN_DIR).join("health.yaml"), BUILTIN_MODEL.to_string())
        } else {
            match read_source(&model_path) {
                Ok(text) => (model_path, text),
                Err(e) => {
                    errors.push(plain(&model_path, format!("cannot read the health model: {e}")));
                    return Err(errors);
                }
            }
        };
        let raw: RawModel = match parse_yaml(&file, &text) {
            Ok(raw) => raw,
            Err(d) => {
                errors.push(*d);
                return Err(errors);
            }
        };
        // With a rule file broken, its functions are missing: checking for unknown
        // functions would only repeat that error under other names.
        let check_functions = errors.is_empty();
        let mut model = Self::validate(engine, &file, &text, raw, check_functions, &rules, &mut errors);
        sources.push(text);
        model.sources = sources;
        if errors.is_empty() {
            Ok(model)
        } else {
            Err(errors)
        }
    }

    /// Checks the values and compiles the categories; pure but for the engine's compiler.
    fn validate(
        engine: &ScriptEngine,
        file: &Path,
        text: &str,
        raw: RawModel,
        check_functions: bool,
        rules: &[RuleText],
        errors: &mut Vec<Diagnostic>,
    ) -> HealthModel {
        let functions = Functions::new(rules);
        let at = |keys: &[&str]| yaml_key_position(text, keys).map(|(l, k, v)| (l, v.unwrap_or(k)));
        let mut err = |keys: &[&str], message: String| {
            let position = at(keys);
            errors.push(
                Diagnostic {
                    file: file.to_path_buf(),
                    position,
                    key: Some(keys.join(".")),
                    message,
                    snippet: None,
                    help: None,
                }
                .with_source(text),
            );
        };
        let (green, yellow) = (raw.bands.green, raw.bands.yellow);
        if !(0.0..=100.0).contains(&green) {
            err(&["bands", "green"], format!("the green threshold must be between 0 and 100, found {green}"));
        }
        if !(0.0..=100.0).contains(&yellow) || yellow >= green {
            err(
                &["bands", "yellow"],
                format!("the yellow threshold must be between 0 and green ({green}), found {yellow}"),
            );
        }
        let margin = raw.damping.margin;
        if !(0.0..=20.0).contains(&margin) {
            err(&["damping", "margin"], format!("the damping margin must be between 0 and 20 points, found {margin}"));
        }
        if raw.categories.is_empty() {
            err(&["categories"], "the model needs at least one category".into());
        }
        let mut categories = Vec::new();
        let mut compile_errors = Vec::new();
        for (name, category) in raw.categories {
            if !(category.weight > 0.0 && category.weight.is_finite()) {
                err(
                    &["categories", &name, "weight"],
                    format!("a weight must be a positive number, found {}", category.weight),
                );
            }
            let (line, mut column) = at(&["categories", &name, "score"]).unwrap_or((1, 1));
            // A quoted expression starts one column after its quote.
            if text.lines().nth(line - 1).and_then(|l| l.chars().nth(column - 1)).is_some_and(|c| c == '"' || c == '\'')
            {
                column += 1;
            }
            match engine.compile(&category.score, Origin::at(file, line, column)) {
                Ok(score) => {
                    let unknown = if check_functions { engine.unknown_functions(&category.score) } else { Vec::new() };
                    for (function, offset) in &unknown {
                        let message = format!("unknown function `{function}`: not in rules/*.rhai nor Rhai's library");
                        compile_errors.push(diagnostic(
                            file,
                            score.origin().position_of(&category.score, *offset),
                            message,
                            text,
                        ));
                    }
                    if unknown.is_empty() {
                        let origin = score.origin();
                        let inputs =
                            functions.inputs_of(&category.score, file, |at| origin.position_of(&category.score, at));
                        categories.push(Category { name, weight: category.weight, score, inputs });
                    }
                }
                Err(e) => compile_errors.push(diagnostic(file, e.position, e.message, text)),
            }
        }
        errors.extend(compile_errors);
        HealthModel {
            file: file.to_path_buf(),
            bands: Bands { green, yellow, margin },
            categories,
            sources: Vec::new(),
        }
    }

    /// Category names, in order.
    pub fn categories(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().map(|c| c.name.as_str())
    }

    /// A category's weight; `None` for a name the model has no category of.
    pub fn weight(&self, category: &str) -> Option<f64> {
        self.categories.iter().find(|c| c.name == category).map(|c| c.weight)
    }

    /// The weights of every category, summed.
    pub fn total_weight(&self) -> f64 {
        self.categories.iter().map(|c| c.weight).sum()
    }

    /// What a category reads of the account (see [`super::inputs`]); empty for a name
    /// the model has no category of.
    pub fn inputs(&self, category: &str) -> &[Input] {
        self.categories.iter().find(|c| c.name == category).map_or(&[], |c| c.inputs.as_slice())
    }

    /// The inputs of `category` that `account` does not have (no such metric; no such
    /// field, or a null one), in the order the category reads them: why a category the
    /// scorer left at `()` had nothing to score.
    pub fn missing_inputs<'m>(&'m self, category: &str, account: &Account) -> Vec<&'m Input> {
        self.inputs(category).iter().filter(|input| input.missing_from(account)).collect()
    }

    /// Scores the account in `scope` for `date`. `previous` is the band of the account's
    /// last point before `date`, for damping. `Ok(None)`: no category could be scored.
    pub fn score(
        &self,
        engine: &ScriptEngine,
        scope: &mut AccountScope,
        date: NaiveDate,
        previous: Option<Band>,
    ) -> Result<Option<HealthPoint>, ScoreError> {
        let mut components = BTreeMap::new();
        let (mut total, mut weights) = (0.0, 0.0);
        for category in &self.categories {
            let fail = |message: String| ScoreError {
                category: category.name.clone(),
                error: EvalError {
                    file: category.score.origin().file.clone(),
                    position: (category.score.origin().line, category.score.origin().column),
                    message,
                },
            };
            let value = category
                .score
                .eval(engine, scope)
                .map_err(|error| ScoreError { category: category.name.clone(), error })?;
            let score =
                number(&value).map_err(|found| fail(format!("expected a score from 0 to 100 or (), found {found}")))?;
            if let Some(s) = score {
                if !(0.0..=100.0).contains(&s) {
                    return Err(fail(format!("expected a score from 0 to 100, found {s}")));
                }
                total += s * category.weight;
                weights += category.weight;
            }
            components.insert(category.name.clone(), score);
        }
        if weights == 0.0 {
            return Ok(None);
        }
        let score = total / weights;
        Ok(Some(HealthPoint { date, score, band: self.bands.damped(score, previous), components }))
    }
}

/// What a scoring run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthRun {
    pub date: Option<NaiveDate>,
    /// Accounts per band, and their ARR.
    pub bands: BTreeMap<Band, (u64, f64)>,
    /// Accounts with no category inputs at all.
    pub unscored: u64,
    /// Band changes against each account's previous point: (from, to) → count.
    pub changes: BTreeMap<(Band, Band), u64>,
    /// Accounts whose scoring failed: (account id, why). Other accounts are unaffected.
    pub errors: Vec<(String, ScoreError)>,
}

/// A Rhai number as `f64`; `()` as `None`; anything else is described in the error.
fn number(value: &Dynamic) -> Result<Option<f64>, String> {
    if value.is_unit() {
        Ok(None)
    } else if let Ok(f) = value.as_float() {
        if f.is_nan() {
            Err("NaN".into())
        } else {
            Ok(Some(f))
        }
    } else if let Ok(i) = value.as_int() {
        Ok(Some(i as f64))
    } else {
        Err(format!("{} ({value})", value.type_name()))
    }
}

/// `*.rhai` files in the rules folder, sorted so later files override earlier ones
/// predictably. A missing folder has none.
fn rule_files(dir: &Path, errors: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(plain(dir, format!("cannot read the rules folder: {e}")));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    files.sort();
    files
}

fn plain(file: &Path, message: String) -> Diagnostic {
    Diagnostic { file: file.to_path_buf(), position: None, key: None, message, snippet: None, help: None }
}

fn diagnostic(file: &Path, position: (usize, usize), message: String, text: &str) -> Diagnostic {
    Diagnostic { file: file.to_path_buf(), position: Some(position), key: None, message, snippet: None, help: None }
        .with_source(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BANDS: Bands = Bands { green: 80.0, yellow: 60.0, margin: 3.0 };

    #[test]
    fn bands_follow_the_domain_thresholds() {
        assert_eq!(BANDS.raw(80.0), Band::Green);
        assert_eq!(BANDS.raw(79.9), Band::Yellow);
        assert_eq!(BANDS.raw(60.0), Band::Yellow);
        assert_eq!(BANDS.raw(59.9), Band::Red);
    }

    #[test]
    fn damping_keeps_a_hovering_account_in_its_band() {
        // Green at 80.1, then 79.9, 78.5, 80.2: stays green throughout.
        let mut band = None;
        for score in [80.1, 79.9, 78.5, 80.2] {
            band = Some(BANDS.damped(score, band));
        }
        assert_eq!(band, Some(Band::Green));
        // A real drop crosses the margin.
        assert_eq!(BANDS.damped(76.9, Some(Band::Green)), Band::Yellow);
        // Coming back up takes 83, not 80.
        assert_eq!(BANDS.damped(82.0, Some(Band::Yellow)), Band::Yellow);
        assert_eq!(BANDS.damped(83.0, Some(Band::Yellow)), Band::Green);
        // A collapse goes straight to red.
        assert_eq!(BANDS.damped(40.0, Some(Band::Green)), Band::Red);
        // Margin 0 turns damping off.
        let off = Bands { margin: 0.0, ..BANDS };
        assert_eq!(off.damped(79.9, Some(Band::Green)), Band::Yellow);
    }
}
