//! The Data service: writes, reads and deletes of tuples and attributes, and bundles.
//!
//! Every write, delete and bundle run is one atomic commit ([`Tenant::commit_with`]) validated
//! against one schema version, and answers with the snap token of its revision; a rejected
//! batch changes nothing. Deletes by filter compute what they delete from the head snapshot
//! inside the commit, so nothing written concurrently slips between the match and the delete.
//!
//! Reads page through the deterministic order of `Snapshot::read_tuples` /
//! `read_attributes`. A continuous token pins the snapshot's revision and holds the position
//! of the last item returned, so the pages of one listing come from one snapshot and cover
//! every item exactly once.

use std::sync::Arc;

use lookout_engine::index::{AttributeFilter, Snapshot, TupleFilter, WriteBatch, WriteError};
use lookout_engine::tokens::ContinuousToken;
use lookout_proto::v1;
use prost::Message;

use super::convert::{self, required};
use super::{
    Service, bundle, next_page_token, pinned_snapshot, query_fingerprint, read_snapshot, run_cpu,
    schema_of, snap_token_at,
};
use crate::error::{ApiError, ErrorCode, Reason};
use crate::tenants::{SchemaVersion, Tenant};

/// Turns the store's rejection of a batch into the client's error, naming the request field
/// of the offending item: `tuples[3] (`doc:1#owner@team:2`): relation ...`. `label` maps the
/// store's list name and index to that field; unmapped errors keep the store's wording.
fn rejected(e: WriteError, label: impl Fn(&str, usize) -> Option<String>) -> ApiError {
    let (what, index) = match &e {
        WriteError::Model { what, index, .. }
        | WriteError::UnknownEntityType { what, index, .. }
        | WriteError::UnknownRelation { what, index, .. }
        | WriteError::SubjectNotAllowed { what, index, .. }
        | WriteError::UnknownAttribute { what, index, .. }
        | WriteError::AttributeType { what, index, .. } => (*what, *index),
        WriteError::Capacity(_) | WriteError::Replica(_) => return ApiError::from_write(e),
    };
    let message = e.to_string();
    let prefix = format!("{what} {index}");
    match (label(what, index), message.strip_prefix(&prefix)) {
        (Some(field), Some(rest)) => {
            ApiError::invalid(format!("{field}{rest}")).with_reason(crate::error::write_reason(&e))
        }
        _ => ApiError::from_write(e),
    }
}

/// Commits the batch `build` makes from the head snapshot as one revision; returns it.
async fn commit<B, L>(
    tenant: Arc<Tenant>,
    schema: Arc<SchemaVersion>,
    build: B,
    label: L,
) -> Result<u64, ApiError>
where
    B: FnOnce(&Snapshot) -> Result<WriteBatch, ApiError> + Send + 'static,
    L: Fn(&str, usize) -> Option<String> + Send + 'static,
{
    tenant
        .commit_with(schema.model.clone(), build, move |e| rejected(e, label))
        .await
}

/// A tuple filter of a delete: `None` when it selects nothing (absent or all fields empty);
/// otherwise the entity type is required, as in Permify.
fn delete_tuple_filter(
    filter: Option<&v1::TupleFilter>,
    field: &str,
) -> Result<Option<TupleFilter>, ApiError> {
    let Some(f) = filter else {
        return Ok(None);
    };
    let converted = convert::tuple_filter(f, field)?;
    if converted == TupleFilter::default() {
        return Ok(None);
    }
    if converted.entity_type.is_none() {
        return Err(ApiError::invalid(format!(
            "{field}.entity.type is required to delete by filter"
        )));
    }
    Ok(Some(converted))
}

/// An attribute filter of a delete: `None` when it selects nothing; otherwise the entity type
/// is required.
fn delete_attribute_filter(
    filter: Option<&v1::AttributeFilter>,
    field: &str,
) -> Result<Option<AttributeFilter>, ApiError> {
    let Some(f) = filter else {
        return Ok(None);
    };
    let converted = convert::attribute_filter(f, field)?;
    if converted == AttributeFilter::default() {
        return Ok(None);
    }
    if converted.entity_type.is_none() {
        return Err(ApiError::invalid(format!(
            "{field}.entity.type is required to delete by filter"
        )));
    }
    Ok(Some(converted))
}

/// The batch deleting everything the filters match in `head`, within `max_batch`.
fn delete_batch(
    head: &Snapshot,
    tuples: Option<&TupleFilter>,
    attributes: Option<&AttributeFilter>,
    max_batch: usize,
) -> Result<WriteBatch, ApiError> {
    let mut batch = WriteBatch::default();
    if let Some(f) = tuples {
        batch.tuple_deletes = head.read_tuples(f);
    }
    if let Some(f) = attributes {
        batch.attribute_deletes = head
            .read_attributes(f)
            .into_iter()
            .map(|a| (a.entity, a.name))
            .collect();
    }
    if batch.len() > max_batch {
        return Err(ApiError::new(
            ErrorCode::ResourceExhausted,
            format!(
                "the filters match {} tuples and attributes, more than the batch limit of {max_batch} (--max-batch-size); narrow the filters",
                batch.len()
            ),
        )
        .with_reason(Reason::MaxDataPerWriteExceeded));
    }
    Ok(batch)
}

/// Names the stored items a delete by filter may be rejected for (their relation or
/// attribute is no longer in the schema).
fn delete_label(what: &str, _index: usize) -> Option<String> {
    match what {
        "tuple delete" => Some("tuple_filter: stored tuple".to_string()),
        "attribute delete" => Some("attribute_filter: stored attribute".to_string()),
        _ => None,
    }
}

/// One page of `items` starting at `start`, and the position of its last item if more follow.
fn page_of<T: Clone>(
    items: &[T],
    start: usize,
    page_size: usize,
) -> Result<(Vec<T>, Option<u64>), ApiError> {
    if start > items.len() {
        return Err(
            ApiError::invalid("continuous_token: position out of range for this listing")
                .with_reason(Reason::InvalidContinuousToken),
        );
    }
    let end = start.saturating_add(page_size).min(items.len());
    let page = items[start..end].to_vec();
    let next = (end < items.len() && end > start).then(|| (end - 1) as u64);
    Ok((page, next))
}

/// What a paged read of stored data asks: its fingerprint (the request without tokens and
/// paging, so a continuous token is accepted only by the same listing), page size and tokens.
struct Listing {
    query: u64,
    page_size: u32,
    snap: String,
    continuous_token: String,
}

impl Listing {
    fn of(
        question: &impl Message,
        page_size: u32,
        snap: Option<String>,
        continuous_token: String,
    ) -> Listing {
        Listing {
            query: query_fingerprint(question),
            page_size,
            snap: snap.unwrap_or_default(),
            continuous_token,
        }
    }
}

impl Service {
    fn check_batch(&self, size: usize, field: &str) -> Result<(), ApiError> {
        if size > self.limits.max_batch {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "{field}: {size} items are more than the batch limit of {} (--max-batch-size)",
                    self.limits.max_batch
                ),
            ));
        }
        Ok(())
    }

    /// The snapshot and first position of a paged read: pinned by the continuous token, or
    /// the head (at least as fresh as the snap token) from the start.
    async fn read_start(
        &self,
        tenant: &Tenant,
        snap: &str,
        continuous_token: &str,
        query: u64,
    ) -> Result<(Arc<Snapshot>, usize), ApiError> {
        if continuous_token.is_empty() {
            return Ok((read_snapshot(tenant, snap).await?, 0));
        }
        let token = ContinuousToken::decode(continuous_token, &tenant.id, query)
            .map_err(|e| ApiError::invalid(format!("continuous_token: {e}")))?;
        let snapshot = pinned_snapshot(tenant, token.revision).await?;
        let start = usize::try_from(token.after)
            .ok()
            .and_then(|after| after.checked_add(1))
            .ok_or_else(|| ApiError::invalid("continuous_token: position out of range"))?;
        Ok((snapshot, start))
    }

    pub async fn data_write(
        &self,
        req: v1::DataWriteRequest,
    ) -> Result<v1::DataWriteResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        if req.tuples.is_empty() && req.attributes.is_empty() {
            return Err(ApiError::invalid(
                "tuples and attributes: at least one tuple or attribute is required",
            ));
        }
        self.check_batch(
            req.tuples.len() + req.attributes.len(),
            "tuples and attributes",
        )?;
        let batch = WriteBatch {
            tuple_writes: convert::tuples_owned(req.tuples, "tuples")?,
            attribute_writes: convert::attributes(&req.attributes, "attributes")?,
            ..WriteBatch::default()
        };
        drop(req.attributes);
        let version = req.metadata.map(|m| m.schema_version).unwrap_or_default();
        let schema = schema_of(&tenant, &version).await?;
        let revision = commit(
            tenant.clone(),
            schema,
            move |_| Ok(batch),
            |what, i| match what {
                "tuple" => Some(format!("tuples[{i}]")),
                "attribute" => Some(format!("attributes[{i}]")),
                _ => None,
            },
        )
        .await?;
        Ok(v1::DataWriteResponse {
            snap_token: snap_token_at(&tenant, revision),
        })
    }

    pub async fn write_relationships(
        &self,
        req: v1::RelationshipWriteRequest,
    ) -> Result<v1::RelationshipWriteResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        if req.tuples.is_empty() {
            return Err(ApiError::invalid("tuples: at least one tuple is required"));
        }
        self.check_batch(req.tuples.len(), "tuples")?;
        let batch = WriteBatch {
            tuple_writes: convert::tuples_owned(req.tuples, "tuples")?,
            ..WriteBatch::default()
        };
        let version = req.metadata.map(|m| m.schema_version).unwrap_or_default();
        let schema = schema_of(&tenant, &version).await?;
        let revision = commit(
            tenant.clone(),
            schema,
            move |_| Ok(batch),
            |what, i| (what == "tuple").then(|| format!("tuples[{i}]")),
        )
        .await?;
        Ok(v1::RelationshipWriteResponse {
            snap_token: snap_token_at(&tenant, revision),
        })
    }

    pub async fn read_relationships(
        &self,
        req: v1::RelationshipReadRequest,
    ) -> Result<v1::RelationshipReadResponse, ApiError> {
        let filter = req.filter.clone();
        let listing = Listing::of(
            &v1::RelationshipReadRequest {
                tenant_id: req.tenant_id.clone(),
                filter: req.filter.clone(),
                ..Default::default()
            },
            req.page_size,
            req.metadata.map(|m| m.snap_token),
            req.continuous_token,
        );
        let (tuples, continuous_token) = self
            .read_page(&req.tenant_id, listing, move || {
                let filter = match &filter {
                    Some(f) => convert::tuple_filter(f, "filter")?,
                    None => TupleFilter::default(),
                };
                Ok(move |s: &Snapshot| s.read_tuples(&filter))
            })
            .await?;
        Ok(v1::RelationshipReadResponse {
            tuples: tuples.iter().map(convert::tuple_out).collect(),
            continuous_token,
        })
    }

    pub async fn read_attributes(
        &self,
        req: v1::AttributeReadRequest,
    ) -> Result<v1::AttributeReadResponse, ApiError> {
        let filter = req.filter.clone();
        let listing = Listing::of(
            &v1::AttributeReadRequest {
                tenant_id: req.tenant_id.clone(),
                filter: req.filter.clone(),
                ..Default::default()
            },
            req.page_size,
            req.metadata.map(|m| m.snap_token),
            req.continuous_token,
        );
        let (attributes, continuous_token) = self
            .read_page(&req.tenant_id, listing, move || {
                let filter = match &filter {
                    Some(f) => convert::attribute_filter(f, "filter")?,
                    None => AttributeFilter::default(),
                };
                Ok(move |s: &Snapshot| s.read_attributes(&filter))
            })
            .await?;
        Ok(v1::AttributeReadResponse {
            attributes: attributes.iter().map(convert::attribute_out).collect(),
            continuous_token,
        })
    }

    /// One page of a listing of stored data: on the snapshot the continuous token pins (or the
    /// head, at least as fresh as the snap token), the items the reader `prepare` makes (once
    /// the tenant and page size are known to be valid) lists after the token's position, and
    /// the token of the next page (empty after the last).
    async fn read_page<T, R>(
        &self,
        tenant_id: &str,
        listing: Listing,
        prepare: impl FnOnce() -> Result<R, ApiError>,
    ) -> Result<(Vec<T>, String), ApiError>
    where
        T: Clone + Send + 'static,
        R: FnOnce(&Snapshot) -> Vec<T> + Send + 'static,
    {
        let tenant = self.tenant(tenant_id).await?;
        let page_size = self.list_page_size(listing.page_size)?;
        let read = prepare()?;
        let (snapshot, start) = self
            .read_start(
                &tenant,
                &listing.snap,
                &listing.continuous_token,
                listing.query,
            )
            .await?;
        let on = snapshot.clone();
        let (items, next) = run_cpu(move || page_of(&read(&on), start, page_size)).await?;
        Ok((
            items,
            next_page_token(&tenant, &snapshot, next, listing.query),
        ))
    }

    pub async fn data_delete(
        &self,
        req: v1::DataDeleteRequest,
    ) -> Result<v1::DataDeleteResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        let tuples = delete_tuple_filter(req.tuple_filter.as_ref(), "tuple_filter")?;
        let attributes =
            delete_attribute_filter(req.attribute_filter.as_ref(), "attribute_filter")?;
        if tuples.is_none() && attributes.is_none() {
            return Err(ApiError::invalid(
                "tuple_filter and attribute_filter: at least one filter must select something (an entity type)",
            ));
        }
        let schema = schema_of(&tenant, "").await?;
        let max_batch = self.limits.max_batch;
        let revision = commit(
            tenant.clone(),
            schema,
            move |head| delete_batch(head, tuples.as_ref(), attributes.as_ref(), max_batch),
            delete_label,
        )
        .await?;
        Ok(v1::DataDeleteResponse {
            snap_token: snap_token_at(&tenant, revision),
        })
    }

    pub async fn delete_relationships(
        &self,
        req: v1::RelationshipDeleteRequest,
    ) -> Result<v1::RelationshipDeleteResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        let filter = required(&req.filter, "filter")?;
        let tuples = delete_tuple_filter(Some(filter), "filter")?.ok_or_else(|| {
            ApiError::invalid("filter.entity.type is required to delete by filter")
        })?;
        let schema = schema_of(&tenant, "").await?;
        let max_batch = self.limits.max_batch;
        let revision = commit(
            tenant.clone(),
            schema,
            move |head| delete_batch(head, Some(&tuples), None, max_batch),
            |what, _| (what == "tuple delete").then(|| "filter: stored tuple".to_string()),
        )
        .await?;
        Ok(v1::RelationshipDeleteResponse {
            snap_token: snap_token_at(&tenant, revision),
        })
    }

    /// Renders every operation of the named bundle with the request's arguments and applies
    /// them all in one commit against the head schema.
    pub async fn run_bundle(
        &self,
        req: v1::BundleRunRequest,
    ) -> Result<v1::BundleRunResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        let bundle = stored_bundle(&tenant, &req.name).await?;
        self.check_batch(bundle::size(&bundle), &format!("bundle `{}`", bundle.name))?;
        let (batch, labels) = bundle::render_all(&bundle, &req.arguments)?;
        let schema = schema_of(&tenant, "").await?;
        let revision = commit(
            tenant.clone(),
            schema,
            move |_| Ok(batch),
            move |what, i| labels.get(what, i),
        )
        .await?;
        Ok(v1::BundleRunResponse {
            snap_token: snap_token_at(&tenant, revision),
        })
    }

    /// Stores bundles by name, replacing bundles of the same names. All are checked first:
    /// one invalid bundle stores none.
    pub async fn bundle_write(
        &self,
        req: v1::BundleWriteRequest,
    ) -> Result<v1::BundleWriteResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        if req.bundles.is_empty() {
            return Err(ApiError::invalid(
                "bundles: at least one bundle is required",
            ));
        }
        for (i, b) in req.bundles.iter().enumerate() {
            bundle::check(b, &format!("bundles[{i}]"))?;
        }
        let names = req.bundles.iter().map(|b| b.name.clone()).collect();
        tenant
            .put_bundles(
                req.bundles
                    .iter()
                    .map(|b| (b.name.clone(), b.encode_to_vec()))
                    .collect(),
            )
            .await?;
        Ok(v1::BundleWriteResponse { names })
    }

    pub async fn bundle_read(
        &self,
        req: v1::BundleReadRequest,
    ) -> Result<v1::BundleReadResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        Ok(v1::BundleReadResponse {
            bundle: Some(stored_bundle(&tenant, &req.name).await?),
        })
    }

    /// Deletes a bundle. Deleting a bundle that does not exist succeeds, as in Permify.
    pub async fn bundle_delete(
        &self,
        req: v1::BundleDeleteRequest,
    ) -> Result<v1::BundleDeleteResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        if req.name.is_empty() {
            return Err(ApiError::invalid("name is required"));
        }
        tenant.delete_bundle(&req.name).await?;
        Ok(v1::BundleDeleteResponse { name: req.name })
    }
}

/// The stored bundle named `name`.
async fn stored_bundle(tenant: &Tenant, name: &str) -> Result<v1::DataBundle, ApiError> {
    if name.is_empty() {
        return Err(ApiError::invalid("name is required"));
    }
    let bytes = tenant.bundle(name).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("bundle `{name}` not found in tenant `{}`", tenant.id),
        )
        .with_reason(Reason::BundleNotFound)
    })?;
    v1::DataBundle::decode(bytes.as_slice())
        .map_err(|e| ApiError::internal(format!("stored bundle `{name}` is unreadable: {e}")))
}
