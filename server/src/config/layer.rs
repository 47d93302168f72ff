//! One declaration per setting. [`settings!`] takes a list of settings, each with its help,
//! its `#[arg(...)]` (long flag, environment variable, value parser) and optional file
//! aliases, and makes from it:
//!
//! - the clap arguments struct, every setting an `Option` so that an unset flag falls through;
//! - the config-file struct: the same fields, keyed by the flag name (`grpc-port`), each read
//!   as its type's [`FileValue::Raw`] form (durations as `10s` or seconds, lists as YAML lists
//!   or comma-separated text, watch retention as text) and converted when the layers are
//!   merged, so that a bad value fails naming its key;
//! - `over`, the flags laid over the file: a flag (or its environment variable) wins, else the
//!   file's value.
//!
//! Defaults are not part of the layers: each subsystem's settings type has them
//! (`Limits::default()`, `Retention::default()`, ...), and [`super::Config::default`]
//! assembles them. Adding a setting is one entry in the list and one line in the resolution
//! that puts it into its subsystem's settings; adding a config-file alias (say, Permify's
//! name for a key) is one `#[file(alias = "...")]` on its entry.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// How a setting's type is written in the config file.
pub(crate) trait FileValue: Sized {
    /// The form the file holds.
    type Raw: for<'de> Deserialize<'de>;
    /// What the file may hold for it, shown in errors after the key's name.
    const ACCEPTS: &'static str;
    /// The setting from the file's form; the error is shown after the key's name.
    fn from_file(raw: Self::Raw) -> Result<Self, String>;
}

/// Types the file holds as they are.
macro_rules! file_value_as_is {
    ($($ty:ty => $accepts:literal),* $(,)?) => {
        $(
            impl FileValue for $ty {
                type Raw = $ty;
                const ACCEPTS: &'static str = $accepts;
                fn from_file(raw: $ty) -> Result<$ty, String> {
                    Ok(raw)
                }
            }
        )*
    };
}

file_value_as_is!(
    bool => "true or false",
    u16 => "a port number 0-65535",
    u32 => "a whole number 0-4294967295",
    u64 => "a whole number",
    usize => "a whole number",
    String => "text",
    PathBuf => "a file path",
    super::DatabaseEngine => "`memory` or `postgres`",
    crate::telemetry::LogFormat => "`text` or `json`",
    crate::auth::AuthnMethod => "`none`, `preshared` or `oidc`",
);

impl FileValue for super::Host {
    type Raw = String;
    const ACCEPTS: &'static str = "an IP address or a host name";
    fn from_file(raw: String) -> Result<Self, String> {
        raw.parse()
    }
}

impl FileValue for Duration {
    type Raw = DurationText;
    const ACCEPTS: &'static str = "a duration such as `10s`, `500ms`, `2m`, or a number of seconds";
    fn from_file(raw: DurationText) -> Result<Duration, String> {
        Ok(raw.0)
    }
}

impl FileValue for crate::storage::postgres::WatchRetention {
    type Raw = String;
    const ACCEPTS: &'static str = "an age such as `24h` or a count such as `100000 revisions`";
    fn from_file(raw: String) -> Result<Self, String> {
        crate::storage::postgres::parse_watch_retention(&raw)
    }
}

impl FileValue for Vec<String> {
    type Raw = List;
    const ACCEPTS: &'static str = "a list: a YAML list or comma-separated text";
    fn from_file(raw: List) -> Result<Self, String> {
        Ok(raw.items())
    }
}

impl FileValue for Vec<Algorithm> {
    type Raw = List;
    const ACCEPTS: &'static str = "a list of signature algorithms such as `RS256,ES256`";
    fn from_file(raw: List) -> Result<Self, String> {
        raw.items()
            .iter()
            .map(|a| crate::auth::oidc::parse_algorithm(a).map_err(|e| e.to_string()))
            .collect()
    }
}

/// A duration in the config file: `10s`, `500ms`, `2m`, or a number of seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DurationText(pub Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(s) => Ok(DurationText(Duration::from_secs(s))),
            Raw::Text(t) => crate::units::parse_duration(&t)
                .map(DurationText)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A list in the config file: a YAML list or comma-separated text.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum List {
    Items(Vec<String>),
    Text(String),
    #[default]
    Empty,
}

impl List {
    fn items(&self) -> Vec<String> {
        match self {
            List::Items(items) => items.clone(),
            List::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            List::Empty => Vec::new(),
        }
    }
}

/// Whether `key` (kebab-case, as the file is normalised to) is one of `names` (field names
/// and aliases, in either case).
pub(crate) fn is_one_of(key: &str, names: &[&str]) -> bool {
    let key = key.replace('-', "_");
    names.iter().any(|n| n.replace('-', "_") == key)
}

/// Declares a group of settings once: see the module docs. `before { ... }` and `after { ... }`
/// hold fields of the arguments struct that are not settings of this group (placed before or
/// after the settings, which is their order in `--help`; copied from the flags by `over`);
/// `file_only { ... }` holds keys of the file that have no flag (read by the caller), each with
/// what it accepts (`key: Type = "true or false",`).
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct $args:ident, file $file:ident {
            before { $( $(#[$bmeta:meta])* pub $bfield:ident : $bty:ty, )* }
            after { $( $(#[$ameta:meta])* pub $afield:ident : $aty:ty, )* }
            file_only { $( $(#[doc = $fdoc:literal])* $ffield:ident : $fty:ty = $faccepts:literal, )* }
            $(
                $(#[doc = $doc:literal])*
                $(#[file(alias = $alias:literal)])*
                #[arg($($arg:tt)*)]
                pub $field:ident : Option<$ty:ty>,
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct $args {
            $( $(#[$bmeta])* pub $bfield: $bty, )*
            $( $(#[doc = $doc])* #[arg($($arg)*)] pub $field: Option<$ty>, )*
            $( $(#[$ameta])* pub $afield: $aty, )*
        }

        #[doc = concat!("The config file's keys of [`", stringify!($args), "`].")]
        #[derive(Default, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub(crate) struct $file {
            $( $(#[doc = $fdoc])* pub(crate) $ffield: Option<$fty>, )*
            $(
                $(#[serde(alias = $alias)])*
                $field: Option<<$ty as $crate::config::layer::FileValue>::Raw>,
            )*
        }

        impl ::std::fmt::Debug for $file {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                // Values can be secrets (keys): never print them.
                f.write_str(concat!(stringify!($file), " { .. }"))
            }
        }

        impl $file {
            /// Every key of this struct, aliases included.
            #[allow(dead_code, reason = "only keys of groups the file splits by are looked up")]
            pub(crate) const KEYS: &'static [&'static str] = &[
                $( stringify!($ffield), )*
                $( stringify!($field), $( $alias, )* )*
            ];

            /// What the file may hold for `key`, if it is one of this struct's keys.
            #[allow(dead_code, reason = "only keys of groups the file splits by are looked up")]
            pub(crate) fn accepts(key: &str) -> Option<&'static str> {
                $(
                    if $crate::config::layer::is_one_of(key, &[stringify!($ffield)]) {
                        return Some($faccepts);
                    }
                )*
                $(
                    if $crate::config::layer::is_one_of(key, &[stringify!($field) $(, $alias)*]) {
                        return Some(<$ty as $crate::config::layer::FileValue>::ACCEPTS);
                    }
                )*
                None
            }
        }

        impl $args {
            /// These flags over `file`: each setting from its flag (or environment variable)
            /// when given, else from the file. A file value that does not convert fails,
            /// naming its key.
            #[allow(clippy::needless_update, reason = "`before` and `after` may be empty")]
            pub(crate) fn over(&self, file: $file) -> Result<$args, $crate::config::ConfigError> {
                Ok($args {
                    $(
                        $field: match &self.$field {
                            Some(value) => Some(value.clone()),
                            None => file
                                .$field
                                .map(<$ty as $crate::config::layer::FileValue>::from_file)
                                .transpose()
                                .map_err(|e| {
                                    $crate::config::ConfigError(format!(
                                        "{}: {e}",
                                        stringify!($field).replace('_', "-")
                                    ))
                                })?,
                        },
                    )*
                    ..self.clone()
                })
            }
        }
    };
}

pub(crate) use settings;
