//! `lookout schema write FILE|-` and `lookout schema read`: a tenant's schema on a running server,
//! over gRPC (`--target`, `--tenant`, `--token` as for import and export).
//!
//! `write` sends the file (or stdin for `-`) and prints the new schema version. `read` prints
//! the schema as the API returns it: Permify's `SchemaDefinition` in protobuf JSON, the shape
//! of the HTTP API's answer (the API returns the compiled definition, not the source text).

use std::io::{self, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use lookout_proto::v1;
use lookout_proto::v1::schema_client::SchemaClient;

use crate::data_file::{self, ConnectArgs};

#[derive(Debug, Args)]
pub struct SchemaArgs {
    #[command(subcommand)]
    pub action: SchemaAction,
}

#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Write a schema (Permify's DSL) to a tenant; prints the new schema version.
    Write {
        /// The schema file, or `-` for stdin.
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Print a tenant's schema (the latest, or `--schema-version`) as Permify's
    /// `SchemaDefinition` in JSON.
    Read {
        /// The schema version to read (by default, the latest).
        #[arg(long, value_name = "VERSION")]
        schema_version: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Runs the command.
pub fn run(args: &SchemaArgs) -> ExitCode {
    let runtime = match data_file::cli_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(schema(&args.action)) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one action; returns what to print.
pub async fn schema(action: &SchemaAction) -> Result<String, String> {
    match action {
        SchemaAction::Write { file, connect } => {
            let source = read_source(file)?;
            let mut client = client(connect).await?;
            let response = client
                .write(v1::SchemaWriteRequest {
                    tenant_id: connect.tenant.clone(),
                    schema: source,
                })
                .await
                .map_err(|s| format!("{}: {}", file.display(), data_file::status_text(&s)))?;
            Ok(response.into_inner().schema_version)
        }
        SchemaAction::Read {
            schema_version,
            connect,
        } => {
            let mut client = client(connect).await?;
            let response = client
                .read(v1::SchemaReadRequest {
                    tenant_id: connect.tenant.clone(),
                    metadata: Some(v1::SchemaReadRequestMetadata {
                        schema_version: schema_version.clone().unwrap_or_default(),
                    }),
                })
                .await
                .map_err(|s| data_file::status_text(&s))?
                .into_inner();
            let json = lookout_proto::json::to_json(&response.schema.unwrap_or_default())
                .map_err(|e| format!("cannot print the schema: {e}"))?;
            serde_json::to_string_pretty(&json).map_err(|e| format!("cannot print the schema: {e}"))
        }
    }
}

/// The schema source of `file`, or of stdin for `-`.
fn read_source(file: &PathBuf) -> Result<String, String> {
    if file.as_os_str() == "-" {
        let mut source = String::new();
        io::stdin()
            .read_to_string(&mut source)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(source);
    }
    std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))
}

type Client = SchemaClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, data_file::Bearer>,
>;

async fn client(connect: &ConnectArgs) -> Result<Client, String> {
    let (channel, bearer) = data_file::channel(connect)
        .await
        .map_err(|e| e.to_string())?;
    Ok(SchemaClient::with_interceptor(channel, bearer))
}
