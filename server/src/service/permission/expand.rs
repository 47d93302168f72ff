//! Expand: the tree of a permission's rewrite on one entity, down to the subjects and values
//! at its leaves, as `base.v1.Expand`.

use lookout_engine::eval::{Evaluator, ExpandNode, ExpandOp};
use lookout_proto::v1;

use super::permission_name;
use crate::error::ApiError;
use crate::service::convert::{self, required};
use crate::service::{Service, run_cpu};

impl Service {
    pub async fn expand(
        &self,
        req: v1::PermissionExpandRequest,
    ) -> Result<v1::PermissionExpandResponse, ApiError> {
        let entity = convert::entity(required(&req.entity, "entity")?, "entity")?;
        permission_name(&req.permission)?;
        let p = self.prepare(&req).await?;
        let permission = req.permission;
        let tree = run_cpu(move || {
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)?;
            Ok(ev.expand(&entity, &permission)?)
        })
        .await?;
        Ok(v1::PermissionExpandResponse {
            tree: Some(expand_out(&tree)),
        })
    }
}

fn expand_out(node: &ExpandNode) -> v1::Expand {
    use v1::expand::Node;
    use v1::expand_leaf::Type as LeafType;
    use v1::expand_tree_node::Operation;
    match node {
        ExpandNode::Operation {
            entity,
            permission,
            op,
            children,
        } => v1::Expand {
            entity: Some(convert::entity_out(entity)),
            permission: permission.clone(),
            arguments: Vec::new(),
            node: Some(Node::Expand(v1::ExpandTreeNode {
                operation: match op {
                    ExpandOp::Union => Operation::Union as i32,
                    ExpandOp::Intersection => Operation::Intersection as i32,
                    ExpandOp::Exclusion => Operation::Exclusion as i32,
                },
                children: children.iter().map(expand_out).collect(),
            })),
        },
        ExpandNode::Subjects {
            entity,
            permission,
            subjects,
        } => v1::Expand {
            entity: Some(convert::entity_out(entity)),
            permission: permission.clone(),
            arguments: Vec::new(),
            node: Some(Node::Leaf(v1::ExpandLeaf {
                r#type: Some(LeafType::Subjects(v1::Subjects {
                    subjects: subjects.iter().map(convert::subject_out).collect(),
                })),
            })),
        },
        ExpandNode::Value {
            entity,
            permission,
            value,
        } => v1::Expand {
            entity: Some(convert::entity_out(entity)),
            permission: permission.clone(),
            arguments: Vec::new(),
            node: Some(Node::Leaf(v1::ExpandLeaf {
                r#type: Some(LeafType::Value(convert::attr_value_any(
                    &lookout_engine::model::AttrValue::Boolean(*value),
                ))),
            })),
        },
    }
}
