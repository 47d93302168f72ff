//! The `lookout` command line: one subcommand per variant of [`Command`], each with its own
//! arguments struct and a `run` in its own module.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::ServeArgs;
use crate::data_file;
use crate::export_cmd::ExportArgs;
use crate::import_cmd::ImportArgs;
use crate::schema_cmd::SchemaArgs;
use crate::storage::postgres::migrate::{self, MigrateAction, MigrateArgs};
use crate::validate_cmd::ValidateArgs;
use crate::{export_cmd, import_cmd, schema_cmd, serve, validate_cmd};

/// Lookout: a Permify-compatible authorization service.
#[derive(Debug, Parser)]
#[command(name = "lookout", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Permify's API: gRPC (default port 3478) and HTTP/JSON (default port 3476).
    ///
    /// Every flag can also be set by the `LOOKOUT_*` environment variable named in its help,
    /// or in a YAML file given with `--config`; Permify's configuration file and `PERMIFY_*`
    /// variables are read too. Stops gracefully on SIGTERM or SIGINT.
    Serve(Box<ServeArgs>),
    /// Apply, revert or list the PostgreSQL migrations (`serve` applies them too, unless
    /// `--auto-migrate=false`). The database is found as `serve` finds it: `--database-uri`,
    /// `LOOKOUT_DATABASE_URI`, the `--config` file, or Permify's `PERMIFY_DATABASE_URI`.
    Migrate(MigrateCommand),
    /// Run Permify validation files and report every failing assertion.
    ///
    /// Exits with status 1 if an assertion fails or a file cannot be read or run.
    Validate(ValidateArgs),
    /// Write the tuples and attributes of a file (text or JSON lines) to a running server, or
    /// straight into the PostgreSQL database with `--database-uri`.
    ///
    /// Through a server: batches of `--batch-size` lines; the progress after every acknowledged
    /// batch is kept in `FILE.lookout-import-state`, so running the same command again after an
    /// interruption goes on after the last committed line. Directly (`--database-uri` or
    /// `--config`): one transaction with COPY, validated against the tenant's schema, as
    /// revisions the servers on the database see; interrupted, it wrote nothing. A file that
    /// carries a schema writes it first into a tenant that has none. Prints the snap token of
    /// the last write.
    Import(ImportArgs),
    /// Write every tuple and attribute of a tenant, one per line: from a running server, or
    /// straight from the PostgreSQL database (with the schema source) with `--database-uri`.
    Export(ExportArgs),
    /// Write a tenant's schema to a running server, or read it back.
    Schema(SchemaArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Validate(args) => validate_cmd::run(&args),
        Command::Migrate(args) => run_migrate(&args),
        Command::Import(args) => import_cmd::run(&args),
        Command::Export(args) => export_cmd::run(&args),
        Command::Schema(args) => schema_cmd::run(&args),
    }
}

/// The arguments of `lookout migrate`: an action and where the database is, read from the same
/// configuration as `serve`'s.
#[derive(Debug, Args)]
pub struct MigrateCommand {
    #[command(subcommand)]
    pub action: MigrateAction,

    /// YAML file of `serve`'s settings (Lookout's keys or Permify's); its database URI is used.
    #[arg(
        short = 'c',
        long,
        value_name = "FILE",
        env = "LOOKOUT_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// Database connection URI, e.g. `postgres://user:password@host:5432/lookout`.
    #[arg(long, value_name = "URI", env = "LOOKOUT_DATABASE_URI", global = true)]
    pub database_uri: Option<String>,
}

impl MigrateCommand {
    /// The database URI, resolved as `serve` resolves it with `env` as the environment of
    /// Permify's variables; the warnings about ignored settings come with it.
    fn database_uri(
        &self,
        env: &[(String, String)],
    ) -> Result<(String, Vec<String>), crate::config::ConfigError> {
        data_file::database_uri(self.config.clone(), self.database_uri.clone(), env)
    }
}

/// Runs `lookout migrate` on the database its configuration names; exit status 2 for bad
/// settings.
fn run_migrate(args: &MigrateCommand) -> ExitCode {
    match args.database_uri(&data_file::environment()) {
        Ok((uri, warnings)) => {
            for warning in warnings {
                eprintln!("lookout migrate: warning: {warning}");
            }
            migrate::run(&MigrateArgs {
                action: args.action,
                database_uri: Some(uri),
            })
        }
        Err(e) => {
            eprintln!("lookout migrate: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn validate_takes_files_and_verbose() {
        let cli = Cli::try_parse_from(["lookout", "validate", "-v", "a.yaml", "b.yaml"]).unwrap();
        let Command::Validate(args) = cli.command else {
            panic!("not validate");
        };
        assert!(args.verbose);
        assert_eq!(
            args.files,
            [PathBuf::from("a.yaml"), PathBuf::from("b.yaml")]
        );
        assert!(Cli::try_parse_from(["lookout", "validate"]).is_err());
    }

    #[test]
    fn migrate_takes_an_action_and_a_uri() {
        let cli = Cli::try_parse_from([
            "lookout",
            "migrate",
            "down",
            "--to",
            "0",
            "--database-uri",
            "postgres://x/y",
        ])
        .unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!("not migrate");
        };
        assert!(matches!(
            args.action,
            migrate::MigrateAction::Down { to: Some(0) }
        ));
        assert_eq!(args.database_uri.as_deref(), Some("postgres://x/y"));
        assert!(Cli::try_parse_from(["lookout", "migrate", "sideways"]).is_err());
    }

    #[test]
    fn migrate_reads_serves_configuration() {
        let path = std::env::temp_dir().join(format!(
            "lookout-migrate-config-{}.yaml",
            std::process::id()
        ));
        std::fs::write(
            &path,
            "database:\n  engine: postgres\n  uri: postgres://file/db\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from(["lookout", "migrate", "up", "-c", path.to_str().unwrap()])
            .unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!("not migrate");
        };
        let (uri, _) = args.database_uri(&[]).unwrap();
        assert_eq!(uri, "postgres://file/db");
        let _ = std::fs::remove_file(&path);
        let cli = Cli::try_parse_from(["lookout", "migrate", "status"]).unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!("not migrate");
        };
        let env = [
            ("PERMIFY_DATABASE_ENGINE".to_owned(), "postgres".to_owned()),
            (
                "PERMIFY_DATABASE_URI".to_owned(),
                "postgres://env/db".to_owned(),
            ),
        ];
        assert_eq!(args.database_uri(&env).unwrap().0, "postgres://env/db");
        let e = args.database_uri(&[]).unwrap_err();
        assert!(e.0.contains("PERMIFY_DATABASE_URI"), "{e}");
    }

    #[test]
    fn import_and_export_take_a_target_a_tenant_and_a_format() {
        let cli = Cli::try_parse_from([
            "lookout",
            "import",
            "data.txt",
            "--target",
            "h:1",
            "--tenant",
            "t9",
            "--format",
            "json",
            "--batch-size",
            "7",
        ])
        .unwrap();
        let Command::Import(args) = cli.command else {
            panic!("not import");
        };
        assert_eq!(args.file, PathBuf::from("data.txt"));
        assert_eq!(args.connect.target, "h:1");
        assert_eq!(args.connect.tenant, "t9");
        assert_eq!(args.format, Some(crate::data_file::Format::Json));
        assert_eq!(args.batch_size, 7);
        assert!(Cli::try_parse_from(["lookout", "import", "f", "--batch-size", "0"]).is_err());
        assert!(Cli::try_parse_from(["lookout", "import"]).is_err());

        let cli = Cli::try_parse_from([
            "lookout",
            "import",
            "data.txt",
            "--database-uri",
            "postgres://db/x",
            "--tenant",
            "t2",
            "--create-tenant",
            "--revision-size",
            "5000",
            "--progress",
        ])
        .unwrap();
        let Command::Import(args) = cli.command else {
            panic!("not import");
        };
        assert!(args.database.direct());
        assert_eq!(
            args.database.database_uri.as_deref(),
            Some("postgres://db/x")
        );
        assert!(args.create_tenant && args.progress);
        assert_eq!(args.revision_size, 5000);
        assert!(
            Cli::try_parse_from([
                "lookout",
                "import",
                "f",
                "--database-uri",
                "postgres://db/x",
                "--target",
                "h:1"
            ])
            .is_err(),
            "--database-uri and --target exclude each other"
        );
        assert!(Cli::try_parse_from(["lookout", "import", "f", "--revision-size", "0"]).is_err());

        let cli = Cli::try_parse_from([
            "lookout",
            "export",
            "--database-uri",
            "postgres://db/x",
            "b.txt",
        ])
        .unwrap();
        let Command::Export(args) = cli.command else {
            panic!("not export");
        };
        assert!(args.database.direct());
        assert_eq!(args.path(), Some(std::path::Path::new("b.txt")));
        assert!(Cli::try_parse_from(["lookout", "export", "a.txt", "-o", "b.txt"]).is_err());

        let cli = Cli::try_parse_from(["lookout", "export", "-o", "out.txt"]).unwrap();
        let Command::Export(args) = cli.command else {
            panic!("not export");
        };
        assert_eq!(args.output, Some(PathBuf::from("out.txt")));
        assert!(!args.database.direct());
        assert_eq!(args.format, crate::data_file::Format::Text);
        assert_eq!(args.connect.target, "127.0.0.1:3478");
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(args).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        *args
    }

    #[test]
    fn serve_takes_ports_and_watch() {
        let args = serve_args(&["lookout", "serve", "--grpc-port", "0", "--http-port=9"]);
        assert_eq!(args.grpc_port, Some(0));
        assert_eq!(args.http_port, Some(9));
        assert_eq!(args.watch, None);
        assert_eq!(
            serve_args(&["lookout", "serve", "--watch"]).watch,
            Some(true)
        );
        assert_eq!(
            serve_args(&["lookout", "serve", "--watch=false"]).watch,
            Some(false)
        );
        let args = serve_args(&["lookout", "serve", "--database-engine", "postgres"]);
        assert_eq!(
            args.database_engine,
            Some(crate::config::DatabaseEngine::Postgres)
        );
        assert!(Cli::try_parse_from(["lookout", "serve", "--database-engine", "mysql"]).is_err());
    }
}
