//! The Data service: writes, reads and deletes of tuples and attributes, and bundles.
//!
//! Every write, delete and bundle run is one atomic commit ([`Tenant::commit_with`]) validated
//! against one schema version, and answers with the snap token of its revision; a rejected
//! batch changes nothing. Deletes by filter compute what they delete from the head snapshot
//! inside the commit, so nothing written concurrently slips between the match and the delete.
//!
//! Reads page through the listing order of `Snapshot::tuples_page` / `attributes_page`. A
//! continuous token pins the snapshot's revision and holds the position of the last item
//! returned, so the pages of one listing come from one snapshot, cover every item exactly
//! once, and each costs its own size, not the items before it.

use std::sync::Arc;

use lookout_engine::index::{
    AttributeFilter, ListPosition, Page, Snapshot, TupleFilter, WriteBatch, WriteError,
};
use lookout_engine::tokens::{ListingToken, fingerprint_bytes};
use lookout_proto::v1;
use prost::Message;

use super::convert::{self, required};
use super::{Service, bundle, pinned_snapshot, read_snapshot, run_cpu, schema_of, snap_token_at};
use crate::error::{ApiError, ErrorCode, Reason};
use crate::tenants::Tenant;

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

/// Commits the batch `build` makes from the head snapshot as one revision, validated against
/// the schema `version` (the head schema when empty); returns the revision's snap token.
async fn commit<B, L>(
    tenant: &Arc<Tenant>,
    version: &str,
    build: B,
    label: L,
) -> Result<String, ApiError>
where
    B: FnOnce(&Snapshot) -> Result<WriteBatch, ApiError> + Send + 'static,
    L: Fn(&str, usize) -> Option<String> + Send + 'static,
{
    let schema = schema_of(tenant, version).await?;
    let revision = tenant
        .clone()
        .commit_with(schema.model.clone(), build, move |e| rejected(e, label))
        .await?;
    Ok(snap_token_at(tenant, revision))
}

/// The filter of a delete, converted by `convert`: `None` when it selects nothing (absent, or
/// every field empty); otherwise its entity type is required, as in Permify.
fn delete_filter<V, F: Default + PartialEq>(
    filter: Option<&V>,
    field: &str,
    convert: impl FnOnce(&V, &str) -> Result<F, ApiError>,
    entity_type: impl FnOnce(&F) -> bool,
) -> Result<Option<F>, ApiError> {
    let Some(f) = filter else {
        return Ok(None);
    };
    let converted = convert(f, field)?;
    if converted == F::default() {
        return Ok(None);
    }
    if !entity_type(&converted) {
        return Err(ApiError::invalid(format!(
            "{field}.entity.type is required to delete by filter"
        )));
    }
    Ok(Some(converted))
}

fn delete_tuple_filter(
    filter: Option<&v1::TupleFilter>,
    field: &str,
) -> Result<Option<TupleFilter>, ApiError> {
    delete_filter(filter, field, convert::tuple_filter, |f| {
        f.entity_type.is_some()
    })
}

fn delete_attribute_filter(
    filter: Option<&v1::AttributeFilter>,
    field: &str,
) -> Result<Option<AttributeFilter>, ApiError> {
    delete_filter(filter, field, convert::attribute_filter, |f| {
        f.entity_type.is_some()
    })
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

/// What a paged read of stored data asks: its fingerprint (the request without tokens and
/// paging, so a continuous token is accepted only by the same listing), page size and tokens.
struct Listing {
    query: u64,
    page_size: u32,
    snap: String,
    continuous_token: String,
}

impl Listing {
    /// The listing of `kind` ("tuples" or "attributes") selected by `filter`.
    fn of(
        kind: &str,
        filter: &impl Message,
        page_size: u32,
        snap: Option<String>,
        continuous_token: String,
    ) -> Listing {
        let mut question = kind.as_bytes().to_vec();
        filter.encode_raw(&mut question);
        Listing {
            query: fingerprint_bytes(&question),
            page_size,
            snap: snap.unwrap_or_default(),
            continuous_token,
        }
    }
}

/// A paged read of stored data (ReadRelationships, ReadAttributes): the two requests and
/// responses have the same fields for different items, and no common trait, so one body
/// serves both: the filter converted by `$filter`, a page of `$page` on [`Service::read_page`],
/// each item given out by `$out`.
macro_rules! read_listing {
    (
        $(#[$doc:meta])*
        $name:ident($request:ty) -> $response:ident { $items:ident },
        $kind:literal, $filter:path, $page:path, $out:path
    ) => {
        $(#[$doc])*
        pub async fn $name(&self, req: $request) -> Result<v1::$response, ApiError> {
            let filter = req.filter.unwrap_or_default();
            let snap = req.metadata.map(|m| m.snap_token);
            let listing = Listing::of($kind, &filter, req.page_size, snap, req.continuous_token);
            let read = move || $filter(&filter, "filter");
            let (items, continuous_token) =
                self.read_page(&req.tenant_id, listing, read, $page).await?;
            let $items = items.iter().map($out).collect();
            Ok(v1::$response { $items, continuous_token })
        }
    };
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

    /// The snapshot and resume position of a paged read: pinned by the continuous token, or
    /// the head (at least as fresh as the snap token) from the start.
    async fn read_start(
        &self,
        tenant: &Tenant,
        listing: &Listing,
    ) -> Result<(Arc<Snapshot>, Option<ListPosition>), ApiError> {
        if listing.continuous_token.is_empty() {
            return Ok((read_snapshot(tenant, &listing.snap).await?, None));
        }
        let token = ListingToken::decode(&listing.continuous_token, &tenant.id, listing.query)
            .map_err(|e| ApiError::invalid(format!("continuous_token: {e}")))?;
        let snapshot = pinned_snapshot(tenant, token.revision).await?;
        Ok((snapshot, Some(token.after)))
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
        let snap_token = commit(
            &tenant,
            &version,
            move |_| Ok(batch),
            |what, i| match what {
                "tuple" => Some(format!("tuples[{i}]")),
                "attribute" => Some(format!("attributes[{i}]")),
                _ => None,
            },
        )
        .await?;
        Ok(v1::DataWriteResponse { snap_token })
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
        let snap_token = commit(
            &tenant,
            &version,
            move |_| Ok(batch),
            |what, i| (what == "tuple").then(|| format!("tuples[{i}]")),
        )
        .await?;
        Ok(v1::RelationshipWriteResponse { snap_token })
    }

    read_listing!(
        /// ReadRelationships: one page of the stored tuples the filter matches.
        read_relationships(v1::RelationshipReadRequest) -> RelationshipReadResponse { tuples },
        "tuples", convert::tuple_filter, Snapshot::tuples_page, convert::tuple_out
    );

    read_listing!(
        /// ReadAttributes: one page of the stored attributes the filter matches.
        read_attributes(v1::AttributeReadRequest) -> AttributeReadResponse { attributes },
        "attributes", convert::attribute_filter, Snapshot::attributes_page, convert::attribute_out
    );

    /// One page of a listing of stored data: on the snapshot the continuous token pins (or the
    /// head, at least as fresh as the snap token), the items after the token's position that
    /// `page` lists for the filter `filter` makes (once the tenant and page size are known to
    /// be valid), and the token of the next page (empty after the last).
    async fn read_page<F, T>(
        &self,
        tenant_id: &str,
        listing: Listing,
        filter: impl FnOnce() -> Result<F, ApiError>,
        page: fn(&Snapshot, &F, Option<ListPosition>, usize) -> Page<T>,
    ) -> Result<(Vec<T>, String), ApiError>
    where
        F: Send + 'static,
        T: Send + 'static,
    {
        let tenant = self.tenant(tenant_id).await?;
        let page_size = self.list_page_size(listing.page_size)?;
        let filter = filter()?;
        let (snapshot, after) = self.read_start(&tenant, &listing).await?;
        let on = snapshot.clone();
        let Page { items, next } =
            run_cpu(move || Ok(page(&on, &filter, after, page_size))).await?;
        let token = match next {
            Some(after) => {
                tenant.pin(&snapshot);
                let revision = snapshot.revision();
                ListingToken { revision, after }.encode(&tenant.id, listing.query)
            }
            None => String::new(),
        };
        Ok((items, token))
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
        let max_batch = self.limits.max_batch;
        let snap_token = commit(
            &tenant,
            "",
            move |head| delete_batch(head, tuples.as_ref(), attributes.as_ref(), max_batch),
            delete_label,
        )
        .await?;
        Ok(v1::DataDeleteResponse { snap_token })
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
        let max_batch = self.limits.max_batch;
        let snap_token = commit(
            &tenant,
            "",
            move |head| delete_batch(head, Some(&tuples), None, max_batch),
            |what, _| (what == "tuple delete").then(|| "filter: stored tuple".to_string()),
        )
        .await?;
        Ok(v1::RelationshipDeleteResponse { snap_token })
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
        let snap_token = commit(
            &tenant,
            "",
            move |_| Ok(batch),
            move |what, i| labels.get(what, i),
        )
        .await?;
        Ok(v1::BundleRunResponse { snap_token })
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
