//! Lookup subject: the subjects of a type (or subject sets of a relation) that have a
//! permission on one entity, computed whole on the evaluation pool and paged.

use std::sync::Arc;

use lookout_engine::eval::Evaluator;
use lookout_engine::model;
use lookout_proto::v1;

use super::{Position, log_rule_errors, page, page_out, permission_name};
use crate::error::ApiError;
use crate::service::convert::{self, required};
use crate::service::{Service, run_cpu};

impl Service {
    pub async fn lookup_subject(
        &self,
        req: v1::PermissionLookupSubjectRequest,
    ) -> Result<v1::PermissionLookupSubjectResponse, ApiError> {
        let requested_depth = req.metadata.as_ref().map_or(0, |m| m.depth);
        if requested_depth != 0 {
            self.depth(requested_depth)?;
        }
        let page_size = self.page_size(req.page_size, None)?;
        let entity = convert::entity(required(&req.entity, "entity")?, "entity")?;
        permission_name(&req.permission)?;
        let reference = required(&req.subject_reference, "subject_reference")?;
        model::check_entity_type(&reference.r#type)
            .map_err(|e| ApiError::invalid(format!("subject_reference.type: {e}")))?;
        let subject_relation = model::normalize_subject_relation(&reference.relation);
        let subject_type = reference.r#type.clone();
        let mut p = self.prepare(&req).await?;
        let Position { query, after } = self.lookup_start(&mut p, &req).await?.position;
        // IDs only this request knows are numbered in its own overlay, and named from it.
        p.snapshot = Arc::new(p.snapshot.with_request_ids());
        let model = p.schema.model.clone();
        let snapshot = p.snapshot.clone();
        let context = p.context.clone();
        let permission = req.permission.clone();
        let lookup_type = subject_type.clone();
        let set = run_cpu(move || {
            let ev = Evaluator::new(&model, &snapshot, &context)?;
            let set = ev.lookup_subject(
                &entity,
                &permission,
                &lookup_type,
                subject_relation.as_deref(),
            )?;
            log_rule_errors(&set.rule_errors);
            Ok(set)
        })
        .await?;
        let (numbers, next) = page(&set.numbers, after, page_size);
        let (subject_ids, continuous_token) = page_out(&p, &subject_type, &numbers, next, query);
        Ok(v1::PermissionLookupSubjectResponse {
            subject_ids,
            continuous_token,
        })
    }
}
