//! The database migrations (`server/migrations/*.sql`, embedded at build time; applying them
//! needs no database at build time) and `lookout migrate up|down|status`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use sqlx::migrate::{Migrate, Migrator};

/// Lookout's migrations, in version order.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub action: MigrateAction,

    /// Database connection URI, e.g. `postgres://user:password@host:5432/lookout`.
    #[arg(long, value_name = "URI", env = "LOOKOUT_DATABASE_URI", global = true)]
    pub database_uri: Option<String>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the latest applied migration (or, with `--to`, every one after that version).
    Down {
        /// Revert down to this version (0 reverts everything).
        #[arg(long, value_name = "VERSION")]
        to: Option<i64>,
    },
    /// List the migrations and whether each is applied.
    Status,
}

/// Runs `lookout migrate`: exit 0 on success, 1 on a database failure, 2 on bad arguments.
pub fn run(args: &MigrateArgs) -> ExitCode {
    let Some(uri) = args.database_uri.clone().filter(|u| !u.is_empty()) else {
        eprintln!("lookout migrate: --database-uri is required");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lookout migrate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(&uri, args.action)) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lookout migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why `lookout migrate` failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Connect(#[from] super::StartError),
    #[error("cannot connect to {uri}: {source}")]
    Acquire { uri: String, source: sqlx::Error },
    #[error("{what} at {uri}: {source}")]
    Migration {
        what: &'static str,
        uri: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// Performs `action` on the database at `uri`; returns the lines to print.
pub async fn execute(uri: &str, action: MigrateAction) -> Result<Vec<String>, MigrateError> {
    let shown = super::redact(uri);
    let pool = super::connect(uri, 2).await?;
    let failed =
        |what: &'static str, source: sqlx::migrate::MigrateError| MigrateError::Migration {
            what,
            uri: shown.clone(),
            source,
        };
    let applied = async {
        let mut conn = pool
            .acquire()
            .await
            .map_err(|source| MigrateError::Acquire {
                uri: shown.clone(),
                source,
            })?;
        conn.ensure_migrations_table()
            .await
            .map_err(|e| failed("cannot create the migrations table", e))?;
        conn.list_applied_migrations()
            .await
            .map_err(|e| failed("cannot list applied migrations", e))
    };
    let lines = match action {
        MigrateAction::Up => {
            let before = applied.await?.len();
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| failed("cannot apply migrations", e))?;
            let total = MIGRATOR
                .iter()
                .filter(|m| m.migration_type.is_up_migration())
                .count();
            vec![format!(
                "applied {} migration(s); {total} of {total} applied",
                total.saturating_sub(before)
            )]
        }
        MigrateAction::Down { to } => {
            let applied = applied.await?;
            let Some(latest) = applied.iter().map(|m| m.version).max() else {
                return Ok(vec!["no migration is applied".to_string()]);
            };
            let target = match to {
                Some(t) => t,
                None => applied
                    .iter()
                    .map(|m| m.version)
                    .filter(|v| *v < latest)
                    .max()
                    .unwrap_or(0),
            };
            MIGRATOR
                .undo(&pool, target)
                .await
                .map_err(|e| failed("cannot revert migrations", e))?;
            vec![format!("reverted the migrations after version {target}")]
        }
        MigrateAction::Status => {
            let applied = applied.await?;
            MIGRATOR
                .iter()
                .filter(|m| m.migration_type.is_up_migration())
                .map(|m| {
                    let state = if applied.iter().any(|a| a.version == m.version) {
                        "applied"
                    } else {
                        "pending"
                    };
                    format!("{:04} {:<8} {}", m.version, state, m.description)
                })
                .collect()
        }
    };
    pool.close().await;
    Ok(lines)
}
