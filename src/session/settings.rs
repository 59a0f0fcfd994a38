//! A run's settings as a person gives them, and the one place they are read and checked: the
//! page's form and links, the widget's attributes and the command line's options all send their
//! text here unchanged, so a bad value is refused with the same message, naming the setting, the
//! value given and what it may be, wherever it came from.

use serde::{Deserialize, Serialize};

use super::MAX_WORKERS;
use super::messages::BackendChoice;
use crate::training::{SettingError, TrainConfig, allowed};

/// Each setting as text, as given; an absent one (None) takes the article's default.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub epochs: Option<String>,
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub batch_size: Option<String>,
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub learning_rate: Option<String>,
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub margin: Option<String>,
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub validation_split: Option<String>,
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub seed: Option<String>,
    /// Class names, separated by commas (a name may hold spaces).
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub held_out_classes: Option<String>,
    /// `auto`, `webgpu` or `cpu`.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub backend: Option<String>,
    /// On the CPU, the workers that share every batch.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub workers: Option<String>,
}

/// Settings read and checked: what a run takes.
#[derive(Debug)]
pub struct Run {
    pub config: TrainConfig,
    pub backend: BackendChoice,
    pub workers: usize,
}

const BACKEND: &str = "auto, webgpu or cpu";
const WORKERS: &str = "a whole number from 1 to 64";

impl RunSettings {
    /// The settings of `config`, as text, with the `backend` and `workers` given: for callers
    /// that hold typed settings (tests, the command line's defaults).
    pub fn of(config: &TrainConfig, backend: BackendChoice, workers: usize) -> Self {
        Self {
            epochs: Some(config.epochs.to_string()),
            batch_size: Some(config.batch_size.to_string()),
            learning_rate: Some(config.learning_rate.to_string()),
            margin: Some(config.margin.to_string()),
            validation_split: Some(config.validation_split.to_string()),
            seed: Some(config.seed.to_string()),
            held_out_classes: Some(config.held_out().join(",")),
            backend: Some(
                match backend {
                    BackendChoice::Auto => "auto",
                    BackendChoice::Webgpu => "webgpu",
                    BackendChoice::Cpu => "cpu",
                }
                .into(),
            ),
            workers: Some(workers.to_string()),
        }
    }

    /// Reads every setting, in the order of the form, and checks it; the first that cannot be
    /// used is the error.
    pub fn resolve(&self) -> Result<Run, SettingError> {
        let mut config = TrainConfig::new();
        read(&self.epochs, "epochs", allowed::EPOCHS, &mut config.epochs)?;
        read(
            &self.batch_size,
            "batch_size",
            allowed::BATCH_SIZE,
            &mut config.batch_size,
        )?;
        read(
            &self.learning_rate,
            "learning_rate",
            allowed::LEARNING_RATE,
            &mut config.learning_rate,
        )?;
        read(&self.margin, "margin", allowed::MARGIN, &mut config.margin)?;
        read(
            &self.validation_split,
            "validation_split",
            allowed::VALIDATION_SPLIT,
            &mut config.validation_split,
        )?;
        read(&self.seed, "seed", allowed::SEED, &mut config.seed)?;
        config.held_out_classes = self
            .held_out_classes
            .as_deref()
            .map(class_names)
            .filter(|names| !names.is_empty());
        config.check().map_err(|err| SettingError {
            value: self.text_of(err.setting).unwrap_or(err.value),
            ..err
        })?;
        let backend = match given(&self.backend).map(str::to_ascii_lowercase).as_deref() {
            None | Some("auto") => BackendChoice::Auto,
            Some("webgpu") => BackendChoice::Webgpu,
            Some("cpu") => BackendChoice::Cpu,
            Some(_) => return Err(refusal("backend", &self.backend, BACKEND)),
        };
        let mut workers = 1;
        read(&self.workers, "workers", WORKERS, &mut workers)?;
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(refusal("workers", &self.workers, WORKERS));
        }
        Ok(Run {
            config,
            backend,
            workers,
        })
    }
}

impl RunSettings {
    /// The text given for the setting named `setting`.
    fn text_of(&self, setting: &str) -> Option<String> {
        match setting {
            "epochs" => &self.epochs,
            "batch_size" => &self.batch_size,
            "learning_rate" => &self.learning_rate,
            "margin" => &self.margin,
            "validation_split" => &self.validation_split,
            "seed" => &self.seed,
            _ => &None,
        }
        .clone()
    }
}

/// The text of a setting, None when absent or blank (the default then).
fn given(text: &Option<String>) -> Option<&str> {
    text.as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

fn refusal(setting: &'static str, text: &Option<String>, allowed: &'static str) -> SettingError {
    SettingError {
        setting,
        value: text.clone().unwrap_or_default(),
        allowed,
    }
}

/// Parses `text` into `value` when it is given.
fn read<T: std::str::FromStr>(
    text: &Option<String>,
    setting: &'static str,
    allowed: &'static str,
    value: &mut T,
) -> Result<(), SettingError> {
    if let Some(given) = given(text) {
        *value = given.parse().map_err(|_| refusal(setting, text, allowed))?;
    }
    Ok(())
}

/// `8, 9` as the names `8` and `9`: commas separate names, which may hold spaces (`big cat`).
fn class_names(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(fields: &[(&str, &str)]) -> RunSettings {
        let value = serde_json::Value::Object(
            fields
                .iter()
                .map(|(name, text)| (name.to_string(), text.to_string().into()))
                .collect(),
        );
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn none_given_are_the_articles_defaults_and_text_is_read_as_given() {
        let run = RunSettings::default().resolve().unwrap();
        assert_eq!(run.config.epochs, 10);
        assert_eq!((run.backend, run.workers), (BackendChoice::Auto, 1));
        let run = settings(&[
            ("epochs", " 3 "),
            ("learning_rate", "1e-2"),
            ("held_out_classes", "8, 9"),
            ("backend", "CPU"),
            ("workers", "2"),
            ("seed", ""),
        ])
        .resolve()
        .unwrap();
        assert_eq!((run.config.epochs, run.config.learning_rate), (3, 0.01));
        assert_eq!(run.config.held_out(), ["8", "9"]);
        assert_eq!(run.config.seed, 42);
        assert_eq!((run.backend, run.workers), (BackendChoice::Cpu, 2));
        let spaced = settings(&[("held_out_classes", "big cat")])
            .resolve()
            .unwrap();
        assert_eq!(spaced.config.held_out(), ["big cat"]);
        let two = settings(&[("held_out_classes", "big cat, dog")])
            .resolve()
            .unwrap();
        assert_eq!(two.config.held_out(), ["big cat", "dog"]);
        let typed = TrainConfig::new().with_epochs(2).with_margin(0.5);
        let run = RunSettings::of(&typed, BackendChoice::Webgpu, 3)
            .resolve()
            .unwrap();
        assert_eq!((run.config.epochs, run.config.margin), (2, 0.5));
        assert!(run.config.held_out_classes.is_none());
        assert_eq!((run.backend, run.workers), (BackendChoice::Webgpu, 3));
    }

    #[test]
    fn what_the_messages_allow_is_what_the_checks_allow() {
        assert!(WORKERS.ends_with(&format!("from 1 to {MAX_WORKERS}")));
        let split = crate::training::MAX_VALIDATION_SPLIT;
        assert!(allowed::VALIDATION_SPLIT.ends_with(&format!("from 0 to {split}")));
    }

    #[test]
    fn every_bad_setting_is_named_with_the_value_given_and_what_it_may_be() {
        for (name, text, expected) in [
            (
                "seed",
                "-1",
                "seed is \"-1\": it must be a whole number from 0 to 18446744073709551615",
            ),
            (
                "epochs",
                "-3",
                "epochs is \"-3\": it must be a whole number, 1 or more",
            ),
            (
                "epochs",
                "0",
                "epochs is \"0\": it must be a whole number, 1 or more",
            ),
            (
                "margin",
                "NaN",
                "margin is \"NaN\": it must be a number above 0",
            ),
            (
                "validation_split",
                "0.99",
                "validation_split is \"0.99\": it must be a number from 0 to 0.9",
            ),
            (
                "backend",
                "gpu9",
                "backend is \"gpu9\": it must be auto, webgpu or cpu",
            ),
            (
                "batch_size",
                "many",
                "batch_size is \"many\": it must be a whole number, 1 or more",
            ),
            (
                "learning_rate",
                "inf",
                "learning_rate is \"inf\": it must be a number above 0",
            ),
            (
                "workers",
                "65",
                "workers is \"65\": it must be a whole number from 1 to 64",
            ),
        ] {
            let err = settings(&[(name, text)]).resolve().unwrap_err();
            assert_eq!(err.to_string(), expected);
            assert_eq!((err.setting, err.value.as_str()), (name, text));
        }
    }
}
