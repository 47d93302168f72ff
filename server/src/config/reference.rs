//! The configuration reference in the README, generated from the flags themselves so that it
//! cannot drift: every flag of `lookout serve` with its environment variable, its config-file
//! key and its help; and every key of Permify's configuration with what Lookout does with it
//! (from the table of `config/permify.rs`). A test compares the README's tables with
//! [`markdown_table`] and [`permify_table`]; run it with `UPDATE_README=1` to rewrite them.

use clap::{Args, Command};

use super::ServeArgs;

/// The README's markers around the generated table.
pub const BEGIN: &str =
    "<!-- serve-flags:begin (generated from the flags; see server/src/config/reference.rs) -->";
pub const END: &str = "<!-- serve-flags:end -->";

/// The README's markers around the generated table of Permify's keys.
pub const PERMIFY_BEGIN: &str =
    "<!-- permify-keys:begin (generated from server/src/config/permify.rs) -->";
pub const PERMIFY_END: &str = "<!-- permify-keys:end -->";

/// One row per key of Permify's configuration: the key, its `PERMIFY_*` variable, and the
/// Lookout setting it sets or why it is refused or ignored.
pub fn permify_table() -> String {
    use super::permify::{KEYS, Quiet, TlsField, Treatment, tls_key};
    let mut out =
        String::from("| Permify key | Environment variable | In Lookout |\n| --- | --- | --- |\n");
    for key in KEYS {
        let env = key.env.map(|e| format!("`{e}`")).unwrap_or_default();
        let quiet = |quiet: Quiet| match quiet {
            Quiet::False => " (`false` is accepted)",
            Quiet::True => " (`true` is accepted)",
            Quiet::Empty => "",
        };
        let what = match key.treatment {
            Treatment::Setting(to) => format!("sets `{to}`"),
            Treatment::Tracer(_) => {
                "with `tracer.enabled`, `exporter: otlp` and `endpoint` set `otel-endpoint` (OTLP/gRPC only; other exporters are refused)".to_owned()
            }
            Treatment::Tls(port, TlsField::Enabled) => format!(
                "`true` turns TLS on for the {} port with `{}` and `{}`, which it then requires; `false` leaves the port plaintext",
                port.name(),
                tls_key(port, TlsField::Cert),
                tls_key(port, TlsField::Key),
            ),
            Treatment::Tls(port, field) => format!(
                "with `{}: true`, sets `{}`; otherwise ignored, with a warning",
                tls_key(port, TlsField::Enabled),
                if field == TlsField::Cert {
                    port.cert_setting()
                } else {
                    port.key_setting()
                },
            ),
            Treatment::Refused { quiet: q, reason } => {
                format!("**refused**{}: not supported by Lookout: {reason}", quiet(q))
            }
            Treatment::Ignored { quiet: q, reason } => {
                format!("ignored, with a warning{}: {reason}", quiet(q))
            }
        };
        out.push_str(&format!(
            "| `{}` | {env} | {} |\n",
            key.key,
            what.replace('|', "\\|")
        ));
    }
    out
}

/// One row per flag of `lookout serve`: flag, environment variable, config key, help.
pub fn markdown_table() -> String {
    let command = ServeArgs::augment_args(Command::new("serve"));
    let mut out = String::from(
        "| Flag | Environment variable | Config key | What it sets |\n| --- | --- | --- | --- |\n",
    );
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        let values = arg.get_value_names().map(|names| {
            names
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(" ")
        });
        let flag = match values {
            Some(v) => format!("`--{long} {v}`"),
            None => format!("`--{long}`"),
        };
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        // `--config` names the file itself.
        let key = if long == "config" {
            "—".to_owned()
        } else {
            format!("`{long}`")
        };
        let mut help = arg
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
            .replace('\n', " ");
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        if !possible.is_empty() && !long.ends_with("auto-migrate") && long != "watch" {
            if !help.ends_with('.') {
                help.push('.');
            }
            help.push_str(&format!(" One of {}.", possible.join(", ")));
        }
        let help = help.replace('|', "\\|");
        out.push_str(&format!("| {flag} | {env} | {key} | {help} |\n"));
    }
    out
}

/// `readme` with the text between [`BEGIN`] and [`END`] replaced by `table`; None without
/// the markers.
pub fn replace_table(readme: &str, table: &str) -> Option<String> {
    replace_between(readme, BEGIN, END, table)
}

/// `readme` with the text between `begin` and `end` replaced by `table`; None without them.
pub fn replace_between(readme: &str, begin: &str, end: &str, table: &str) -> Option<String> {
    let start = readme.find(begin)? + begin.len();
    let end = readme[start..].find(end)? + start;
    Some(format!("{}\n{table}{}", &readme[..start], &readme[end..]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn the_readme_documents_every_flag() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let table = markdown_table();
        let updated = replace_table(&readme, &table)
            .unwrap_or_else(|| panic!("README.md has no `{BEGIN}` ... `{END}` section"));
        let updated = replace_between(&updated, PERMIFY_BEGIN, PERMIFY_END, &permify_table())
            .unwrap_or_else(|| {
                panic!("README.md has no `{PERMIFY_BEGIN}` ... `{PERMIFY_END}` section")
            });
        if updated != readme {
            if std::env::var_os("UPDATE_README").is_some() {
                std::fs::write(path, updated).unwrap();
            } else {
                panic!(
                    "README.md's configuration table is out of date; rerun this test with UPDATE_README=1 to rewrite it:\n{table}"
                );
            }
        }
        // Every flag, with its variable, is in the table (and so in the README).
        let command = ServeArgs::augment_args(Command::new("serve"));
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(table.contains(&format!("`--{long}")), "--{long}");
                if let Some(env) = arg.get_env() {
                    assert!(table.contains(&*env.to_string_lossy()), "{env:?}");
                }
            }
        }
        for flag in [
            "--authn-method",
            "--authn-preshared-keys",
            "--authn-oidc-issuer",
            "--max-inflight",
            "--max-concurrent-streams",
            "--request-timeout",
            "--max-batch-size",
        ] {
            assert!(table.contains(flag), "{flag}");
        }
    }
}
