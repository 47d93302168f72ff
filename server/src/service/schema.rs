//! The Schema service: write, partial write, read and list schema versions.
//!
//! Versions are append-only: a write compiles the source and stores it with its model as the
//! new head. A partial write edits the members of some entities of a base version (printed
//! back from its compiled form, see [`lookout_engine::schema::print`]) and stores the result
//! as a new version; the base is never changed.

use std::collections::HashMap;

use lookout_engine::schema::{self, Schema, SchemaError, ast, print};
use lookout_engine::tokens::ContinuousToken;
use lookout_proto::v1;

use super::{Service, convert, query_fingerprint, run_cpu, schema_of};
use crate::error::{ApiError, ErrorCode, Reason};
use crate::tenants::Tenant;

/// Scope of schema-list continuous tokens, besides the tenant.
fn list_query(tenant_id: &str) -> u64 {
    query_fingerprint(&v1::SchemaListRequest {
        tenant_id: tenant_id.to_string(),
        ..Default::default()
    })
}

/// The kind and name of one member statement (`relation viewer @user`,
/// `permission view = viewer or owner`), checked by parsing it on its own.
fn statement_name(statement: &str) -> Result<String, String> {
    let wrapped = format!("entity partial {{\n{statement}\n}}");
    let parsed = schema::parse(&wrapped).map_err(|e| {
        // The statement starts on line 2 of the wrapper.
        format!(
            "{}:{}: {}",
            e.span.line.saturating_sub(1).max(1),
            e.span.column,
            e.message
        )
    })?;
    match parsed.decls.as_slice() {
        [ast::Decl::Entity(entity)] if entity.members.len() == 1 => Ok(entity
            .members
            .first()
            .map(|m| m.name().name.clone())
            .unwrap_or_default()),
        _ => Err(
            "expected exactly one `relation`, `attribute`, `permission` or `action` statement"
                .to_string(),
        ),
    }
}

/// The source of `base` with the edits of `partials` applied: per entity, deleted members
/// removed, updated members replaced in place, written members appended.
fn edited_source(
    base: &Schema,
    version: &str,
    partials: &HashMap<String, v1::Partials>,
) -> Result<String, ApiError> {
    let mut names: Vec<&String> = partials.keys().collect();
    names.sort();
    let mut edited = HashMap::new();
    for entity in names {
        let Some(edits) = partials.get(entity) else {
            continue;
        };
        let field = format!("partials.{entity}");
        let Some((ty, _)) = base.entity(entity) else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("{field}: entity `{entity}` is not defined in schema version `{version}`"),
            )
            .with_reason(Reason::EntityDefinitionNotFound));
        };
        let mut members = print::member_statements(base, ty);
        let missing = |at: String, name: &str| {
            ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "{at}: entity `{entity}` has no relation, permission or attribute `{name}`"
                ),
            )
        };
        for (i, name) in edits.delete.iter().enumerate() {
            let name = name.trim();
            let position = members
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| missing(format!("{field}.delete[{i}]"), name))?;
            members.remove(position);
        }
        for (i, statement) in edits.update.iter().enumerate() {
            let at = format!("{field}.update[{i}]");
            let name =
                statement_name(statement).map_err(|e| ApiError::invalid(format!("{at}: {e}")))?;
            let slot = members
                .iter_mut()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| missing(at, &name))?;
            slot.1 = statement.trim().to_string();
        }
        for (i, statement) in edits.write.iter().enumerate() {
            let at = format!("{field}.write[{i}]");
            let name =
                statement_name(statement).map_err(|e| ApiError::invalid(format!("{at}: {e}")))?;
            if members.iter().any(|(n, _)| *n == name) {
                return Err(ApiError::new(
                    ErrorCode::AlreadyExists,
                    format!("{at}: entity `{entity}` already has a member `{name}`; use `update`"),
                ));
            }
            members.push((name, statement.trim().to_string()));
        }
        edited.insert(ty, members.into_iter().map(|(_, s)| s).collect::<Vec<_>>());
    }
    Ok(print::print_edited(base, &edited))
}

/// A compile error of an edited schema, quoting the generated line it points at (the client
/// never saw the whole generated source).
fn edited_error(e: &SchemaError, source: &str) -> ApiError {
    let line = usize::try_from(e.span.line)
        .ok()
        .and_then(|l| source.lines().nth(l.saturating_sub(1)))
        .map(str::trim)
        .unwrap_or_default();
    ApiError::invalid(format!(
        "partials: the edited schema does not compile: {e} (at `{line}`)"
    ))
}

impl Service {
    pub async fn schema_write(
        &self,
        req: v1::SchemaWriteRequest,
    ) -> Result<v1::SchemaWriteResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        let source = req.schema;
        let compiled =
            run_cpu(move || Tenant::compile_schema(&source).map_err(ApiError::from_schema)).await?;
        let version = tenant.add_schema(compiled).await?;
        Ok(v1::SchemaWriteResponse {
            schema_version: version.version.clone(),
        })
    }

    pub async fn schema_partial_write(
        &self,
        req: v1::SchemaPartialWriteRequest,
    ) -> Result<v1::SchemaPartialWriteResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        if req.partials.is_empty() {
            return Err(ApiError::invalid(
                "partials: at least one entity is required",
            ));
        }
        let version = req.metadata.map(|m| m.schema_version).unwrap_or_default();
        let base = schema_of(&tenant, &version).await?;
        let partials = req.partials;
        let compiled = run_cpu(move || {
            let source = edited_source(&base.model.schema, &base.version, &partials)?;
            Tenant::compile_schema(&source).map_err(|e| edited_error(&e, &source))
        })
        .await?;
        let written = tenant.add_schema(compiled).await?;
        Ok(v1::SchemaPartialWriteResponse {
            schema_version: written.version.clone(),
        })
    }

    pub async fn schema_read(
        &self,
        req: v1::SchemaReadRequest,
    ) -> Result<v1::SchemaReadResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        let version = req.metadata.map(|m| m.schema_version).unwrap_or_default();
        let schema = schema_of(&tenant, &version).await?;
        Ok(v1::SchemaReadResponse {
            schema: Some(convert::schema_definition_out(&schema.model.schema)),
        })
    }

    /// Lists versions newest first. A continuous token holds the position of the last version
    /// returned counted from the oldest, which versions written meanwhile do not move.
    pub async fn schema_list(
        &self,
        req: v1::SchemaListRequest,
    ) -> Result<v1::SchemaListResponse, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        let page_size = self.list_page_size(req.page_size)?;
        let versions = tenant.schemas().await?;
        let total = versions.len();
        let query = list_query(&tenant.id);
        let start = if req.continuous_token.is_empty() {
            0
        } else {
            let token = ContinuousToken::decode(&req.continuous_token, &tenant.id, query)
                .map_err(|e| ApiError::invalid(format!("continuous_token: {e}")))?;
            usize::try_from(token.after)
                .ok()
                .filter(|after| *after <= total)
                .map(|after| total - after)
                .ok_or_else(|| ApiError::invalid("continuous_token: position out of range"))?
        };
        let end = start.saturating_add(page_size).min(total);
        let schemas = versions
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|v| v1::SchemaList {
                version: v.version.clone(),
                created_at: convert::rfc3339(v.created_at),
            })
            .collect();
        let continuous_token = if end < total && end > start {
            ContinuousToken {
                revision: 0,
                after: (total - end) as u64,
            }
            .encode(&tenant.id, query)
        } else {
            String::new()
        };
        Ok(v1::SchemaListResponse {
            head: versions
                .first()
                .map(|v| v.version.clone())
                .unwrap_or_default(),
            schemas,
            continuous_token,
        })
    }
}
