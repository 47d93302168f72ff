//! `--setup`: create the tenant if needed, write the data set's schema and load its tuples
//! (and attributes) through Data.Write in batches, with a progress bar.
//!
//! Tuples are generated on a blocking thread and handed over a small channel, so a large data
//! set is never held in memory whole and generation overlaps the writes.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lookout_engine::model::{
    AttrValue, Attribute as EngineAttribute, SubjectRef, Tuple as EngineTuple,
};
use lookout_proto::v1::data_client::DataClient;
use lookout_proto::v1::schema_client::SchemaClient;
use lookout_proto::v1::tenancy_client::TenancyClient;
use lookout_proto::v1::{
    Attribute, BooleanValue, DataWriteRequest, DataWriteRequestMetadata, Entity,
    SchemaWriteRequest, Subject, TenantCreateRequest, Tuple,
};
use prost::Message;
use serde::Serialize;
use tonic::Code;
use tonic::transport::Channel;

use super::LoadgenError;
use super::cli::Dataset;
use crate::docs::{self, Shape};
use crate::social;

/// The tenant every Lookout server has.
const DEFAULT_TENANT: &str = "t1";

/// What `--setup` did.
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    pub dataset: String,
    pub tenant: String,
    pub schema_version: String,
    pub tuples: u64,
    pub writes: u64,
    pub duration_secs: f64,
}

/// Writes the schema and loads `dataset` into `tenant`.
pub async fn load(
    channel: Channel,
    tenant: &str,
    dataset: Dataset,
    seed: u64,
    batch: usize,
    progress: bool,
) -> Result<SetupReport, LoadgenError> {
    let started = Instant::now();
    let failed = |what: &str, status: tonic::Status| {
        LoadgenError::Setup(format!(
            "{what}: {} ({:?})",
            status.message(),
            status.code()
        ))
    };

    if tenant != DEFAULT_TENANT {
        let created = TenancyClient::new(channel.clone())
            .create(TenantCreateRequest {
                id: tenant.to_owned(),
                name: tenant.to_owned(),
            })
            .await;
        match created {
            Ok(_) => {}
            Err(status) if status.code() == Code::AlreadyExists => {}
            Err(status) => return Err(failed("creating the tenant", status)),
        }
    }

    let (schema, estimate) = match dataset {
        Dataset::Docs(documents) => (docs::SCHEMA, estimate_docs_tuples(documents)),
        // About six tuples per index (see `social`).
        Dataset::Social(n) => (social::SCHEMA, n.saturating_mul(6)),
    };
    let schema_version = SchemaClient::new(channel.clone())
        .write(SchemaWriteRequest {
            tenant_id: tenant.to_owned(),
            schema: schema.to_owned(),
        })
        .await
        .map_err(|s| failed("writing the schema", s))?
        .into_inner()
        .schema_version;

    let bar = progress_bar(progress, estimate);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<Tuple>, Vec<Attribute>)>(4);
    let generator = tokio::task::spawn_blocking(move || {
        // A closed channel means the writes failed; the rest is generated and dropped.
        match dataset {
            Dataset::Docs(documents) => docs::generate(documents, seed, batch, |tuples| {
                let _ = tx.blocking_send((tuples.into_iter().map(to_proto).collect(), Vec::new()));
            }),
            Dataset::Social(n) => social::generate(n, batch, |tuples, attributes| {
                let _ = tx.blocking_send((
                    tuples.into_iter().map(to_proto).collect(),
                    attributes.into_iter().map(attribute_to_proto).collect(),
                ));
            }),
        }
    });

    let mut data = DataClient::new(channel);
    let mut tuples = 0u64;
    let mut writes = 0u64;
    while let Some((batch, attributes)) = rx.recv().await {
        let n = batch.len() as u64;
        data.write(DataWriteRequest {
            tenant_id: tenant.to_owned(),
            metadata: Some(DataWriteRequestMetadata {
                schema_version: schema_version.clone(),
            }),
            tuples: batch,
            attributes,
        })
        .await
        .map_err(|s| failed("writing tuples", s))?;
        tuples += n;
        writes += 1;
        bar.set_length(bar.length().unwrap_or(0).max(tuples));
        bar.set_position(tuples);
    }
    generator
        .await
        .map_err(|e| LoadgenError::Setup(format!("generating the data set: {e}")))?;
    bar.finish_and_clear();

    Ok(SetupReport {
        dataset: dataset.to_string(),
        tenant: tenant.to_owned(),
        schema_version,
        tuples,
        writes,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

fn progress_bar(enabled: bool, estimate: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(estimate), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "setup [{elapsed_precise}] [{wide_bar:.cyan/blue}] {pos}/~{len} tuples ({per_sec})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// About how many tuples [`docs::generate`] makes for `documents` (the random parts at their
/// expected counts).
pub fn estimate_docs_tuples(documents: u64) -> u64 {
    let s = Shape::new(documents);
    let folders_below_root = s.folders.saturating_sub(1);
    s.users
        + s.groups.saturating_sub(1)
        + 1
        + folders_below_root
        + folders_below_root / 10
        + folders_below_root / 50
        + documents * 3
        + documents / 3
        + documents / 100
}

/// A boolean attribute (the only kind the data sets have) as Permify sends it: the value a
/// `google.protobuf.Any` holding a `base.v1.BooleanValue`.
fn attribute_to_proto(a: EngineAttribute) -> Attribute {
    let data = matches!(a.value, AttrValue::Boolean(true));
    Attribute {
        entity: Some(Entity {
            r#type: a.entity.ty,
            id: a.entity.id,
        }),
        attribute: a.name,
        value: Some(prost_types::Any {
            type_url: "type.googleapis.com/base.v1.BooleanValue".to_owned(),
            value: BooleanValue { data }.encode_to_vec(),
        }),
    }
}

fn to_proto(t: EngineTuple) -> Tuple {
    let SubjectRef { ty, id, relation } = t.subject;
    Tuple {
        entity: Some(Entity {
            r#type: t.entity.ty,
            id: t.entity.id,
        }),
        relation: t.relation,
        subject: Some(Subject {
            r#type: ty,
            id,
            relation: relation.unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_close_to_the_real_count() {
        for documents in [200u64, 5_000, 50_000] {
            let mut real = 0u64;
            docs::generate(documents, 42, 10_000, |b| real += b.len() as u64);
            let estimate = estimate_docs_tuples(documents);
            let off = real.abs_diff(estimate) as f64 / real as f64;
            assert!(off < 0.05, "{documents}: real {real}, estimate {estimate}");
        }
    }

    #[test]
    fn tuples_convert_with_subject_sets() {
        let mut first = Vec::new();
        docs::generate(200, 1, 10_000, |b| first.extend(b));
        let nested = first
            .into_iter()
            .find(|t| t.subject.relation.is_some())
            .unwrap();
        let p = to_proto(nested);
        assert_eq!(p.subject.as_ref().unwrap().relation, "member");
        assert_eq!(p.entity.as_ref().unwrap().r#type, "group");
    }
}
