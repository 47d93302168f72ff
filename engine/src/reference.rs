//! A naive reference evaluator: the oracle the property tests hold the fast path to.
//!
//! It is written for clarity, not speed, and shares no evaluation code with [`crate::eval`]:
//! it reads the compiled schema IR and plain lists of tuples and attributes, answers a check by
//! plain recursion over the tuple list, and answers a lookup by checking every candidate.
//! Rules run on the `cel` crate, from the rule's source text, with a conversion of its own.
//!
//! Semantics (the same as the fast path's, see [`crate::eval`]):
//! - `member` holds for subject `S` on entity `e` when `S` is the subject set `e#member` itself
//!   (any member: relation, permission or attribute, at every level, as in Permify), or:
//!   - a relation: a tuple `e#rel@S` exists exactly, or a tuple `e#rel@U:u#r` exists and `S`
//!     has `r` on `U:u`. Only tuples whose subject kind the schema allows for `rel` count;
//!   - a permission: its expression holds (`or`, `and`, `not` are boolean);
//!   - a boolean attribute: its value is `true` (a missing value is `false`);
//! - an arrow `via.rest` holds when `rest` holds on the entity part of some subject of a tuple
//!   `e#via@X` of an allowed kind, for the compiled `rest` of `X`'s type;
//! - a rule call runs the rule with the entity's attribute values (a missing value, or one of
//!   the wrong type, is the parameter type's empty value), `request.NAME` arguments read from
//!   `context.data` (missing: the empty value), and the variable `context` bound to
//!   `{"data": data, "tuples": [], "attributes": []}`; an error or a non-boolean denies;
//! - a node (entity type, id, member) already on the current recursion path grants nothing:
//!   the cycle is cut. For schemas where no recursion passes through the right side of a `not`
//!   this computes the least fixpoint. There is no depth limit.
//!
//! Within one check (one subject), answers are remembered where that is trivially sound, so
//! dense cyclic data does not take exponential time: a `true` is always final (it was derived
//! without assuming anything), and a `false` is final when no cycle was cut while computing it
//! (it did not depend on the path).
//!
//! Contextual tuples and attributes are simply appended to the lists. When an attribute is
//! listed more than once for the same entity, the last one wins (a later write overwrites).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::model::{AttrValue, Attribute, EntityRef, SubjectRef, Tuple};
use crate::schema::{AttrType, CallArg, Expr, Member, RelationDef, Schema, TypeId};

/// The reference evaluator over plain lists of data.
pub struct Reference<'a> {
    pub schema: &'a Schema,
    pub tuples: Vec<Tuple>,
    pub attributes: Vec<Attribute>,
    pub data: serde_json::Map<String, serde_json::Value>,
    /// The CEL standard library, built once per reference.
    env: Arc<cel::Env>,
    /// Every rule body compiled from its source text (`None` if it does not compile: denies).
    programs: Vec<Option<cel::Program>>,
}

impl<'a> Reference<'a> {
    pub fn new(
        schema: &'a Schema,
        tuples: Vec<Tuple>,
        attributes: Vec<Attribute>,
        data: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let programs = schema
            .rules
            .iter()
            .map(|rule| cel::Program::compile(&rule.body).ok())
            .collect();
        Reference {
            schema,
            tuples,
            attributes,
            data,
            env: Arc::new(cel::Env::stdlib()),
            programs,
        }
    }

    /// Whether `subject` has `permission` (a relation, permission or attribute) on `entity`.
    /// Unknown types or members are `false`.
    pub fn check(&self, entity: &EntityRef, permission: &str, subject: &SubjectRef) -> bool {
        let Some((ty, _)) = self.schema.entity(&entity.ty) else {
            return false;
        };
        Walk::new(self, subject).holds(ty, &entity.id, permission)
    }

    /// Every ID of type `entity_type` that appears in the data: as the entity or the subject of
    /// a tuple (with or without a subject relation), or as the entity of an attribute.
    pub fn universe(&self, entity_type: &str) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for t in &self.tuples {
            if t.entity.ty == entity_type {
                ids.insert(t.entity.id.clone());
            }
            if t.subject.ty == entity_type {
                ids.insert(t.subject.id.clone());
            }
        }
        for a in &self.attributes {
            if a.entity.ty == entity_type {
                ids.insert(a.entity.id.clone());
            }
        }
        ids
    }

    /// Every entity of `entity_type` on which `subject` has `permission`: the universe of the
    /// type (plus the subject itself when it is a subject set of that type), filtered by check.
    pub fn lookup_entity(
        &self,
        entity_type: &str,
        permission: &str,
        subject: &SubjectRef,
    ) -> BTreeSet<String> {
        let Some((ty, _)) = self.schema.entity(entity_type) else {
            return BTreeSet::new();
        };
        let mut candidates = self.universe(entity_type);
        if subject.ty == entity_type && subject.relation.is_some() {
            candidates.insert(subject.id.clone());
        }
        // One walk for every candidate: the subject is the same, so are the answers remembered.
        let mut walk = Walk::new(self, subject);
        candidates
            .into_iter()
            .filter(|id| walk.holds(ty, id, permission))
            .collect()
    }

    /// Every subject `subject_type:id` (`subject_type:id#subject_relation` when given) that has
    /// `permission` on `entity`: the universe of the subject type (plus the entity itself when
    /// subject sets of its type are asked for), filtered by check.
    pub fn lookup_subject(
        &self,
        entity: &EntityRef,
        permission: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
    ) -> BTreeSet<String> {
        let mut candidates = self.universe(subject_type);
        if entity.ty == subject_type && subject_relation.is_some() {
            candidates.insert(entity.id.clone());
        }
        candidates
            .into_iter()
            .filter(|id| {
                let subject = SubjectRef::new(
                    subject_type,
                    id.clone(),
                    subject_relation.map(str::to_string),
                );
                self.check(entity, permission, &subject)
            })
            .collect()
    }

    /// The value of attribute `name` of `ty:id`; the last one listed wins.
    fn attribute_value(&self, ty: &str, id: &str, name: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .rev()
            .find(|a| a.entity.ty == ty && a.entity.id == id && a.name == name)
            .map(|a| &a.value)
    }

    /// Whether `subject` is of a kind (type and subject relation) that `relation` allows.
    fn allowed(&self, relation: &RelationDef, subject: &SubjectRef) -> bool {
        relation.allowed.iter().any(|a| {
            self.schema.entity_at(a.entity).name == subject.ty
                && a.relation.as_deref() == subject.relation.as_deref()
        })
    }

    /// The tuples `ty:id#relation@...` whose subject kind the schema allows.
    fn tuples_of<'s>(
        &'s self,
        ty: &'s str,
        id: &'s str,
        relation: &'s RelationDef,
    ) -> impl Iterator<Item = &'s Tuple> + 's {
        self.tuples.iter().filter(move |t| {
            t.entity.ty == ty
                && t.entity.id == id
                && t.relation == relation.name
                && self.allowed(relation, &t.subject)
        })
    }

    /// Runs rule call `rule(args)` for entity `ty:id`.
    fn call(&self, ty: TypeId, id: &str, rule: usize, args: &[CallArg]) -> bool {
        let (Some(def), Some(Some(program))) =
            (self.schema.rules.get(rule), self.programs.get(rule))
        else {
            return false;
        };
        let entity = self.schema.entity_at(ty);
        let mut context = cel::Context::with_env(self.env.clone());
        context.add_variable_from_value("context", context_variable(&self.data));
        for ((param, param_ty), arg) in def.params.iter().zip(args) {
            let value = match arg {
                CallArg::Attribute(attr) => {
                    let name = &entity.attributes[*attr].name;
                    match self.attribute_value(&entity.name, id, name) {
                        Some(v) if v.ty() == *param_ty => attr_value(v),
                        _ => empty_value(*param_ty),
                    }
                }
                CallArg::Context(key) => match self.data.get(key) {
                    Some(v) => json_value(v),
                    None => empty_value(*param_ty),
                },
            };
            context.add_variable_from_value(param.clone(), value);
        }
        matches!(program.execute(&context), Ok(cel::Value::Bool(true)))
    }
}

/// A member of one entity: `(type, id, member name)`.
type Node = (TypeId, String, String);

/// Checks for one subject: the nodes on the current recursion path, and final answers.
struct Walk<'r, 'a> {
    reference: &'r Reference<'a>,
    subject: &'r SubjectRef,
    path: Vec<Node>,
    /// Nodes known to hold.
    known_true: HashSet<Node>,
    /// Nodes known not to hold (computed without cutting a cycle).
    known_false: HashSet<Node>,
    /// How many times a cycle was cut so far.
    cuts: u64,
}

impl<'r, 'a> Walk<'r, 'a> {
    fn new(reference: &'r Reference<'a>, subject: &'r SubjectRef) -> Self {
        Walk {
            reference,
            subject,
            path: Vec::new(),
            known_true: HashSet::new(),
            known_false: HashSet::new(),
            cuts: 0,
        }
    }

    /// Whether the subject has member `name` on `ty:id`.
    fn holds(&mut self, ty: TypeId, id: &str, name: &str) -> bool {
        let schema = self.reference.schema;
        let def = schema.entity_at(ty);
        // The subject set `ty:id#name` itself.
        if self.subject.ty == def.name
            && self.subject.id == id
            && self.subject.relation.as_deref() == Some(name)
        {
            return true;
        }
        let node = (ty, id.to_string(), name.to_string());
        if self.known_true.contains(&node) {
            return true;
        }
        if self.known_false.contains(&node) {
            return false;
        }
        if self.path.contains(&node) {
            self.cuts += 1;
            return false; // a cycle: cut here
        }
        let cuts_before = self.cuts;
        self.path.push(node.clone());
        // On a fresh stack segment when this one runs low: the recursion follows the data.
        let result = crate::stack::grow(|| match def.member(name) {
            None => false,
            Some(Member::Relation(r)) => self.relation(ty, id, &def.relations[r]),
            Some(Member::Permission(p)) => self.expr(ty, id, &def.permissions[p].expr),
            Some(Member::Attribute(a)) => matches!(
                self.reference
                    .attribute_value(&def.name, id, &def.attributes[a].name),
                Some(AttrValue::Boolean(true))
            ),
        });
        self.path.pop();
        if result {
            self.known_true.insert(node);
        } else if self.cuts == cuts_before {
            self.known_false.insert(node);
        }
        result
    }

    fn relation(&mut self, ty: TypeId, id: &str, relation: &RelationDef) -> bool {
        let reference = self.reference;
        let type_name = &reference.schema.entity_at(ty).name;
        for t in reference.tuples_of(type_name, id, relation) {
            if t.subject == *self.subject {
                return true;
            }
            if let Some(r) = &t.subject.relation
                && let Some((u, _)) = reference.schema.entity(&t.subject.ty)
                && self.holds(u, &t.subject.id, r)
            {
                return true;
            }
        }
        false
    }

    fn expr(&mut self, ty: TypeId, id: &str, expr: &Expr) -> bool {
        let reference = self.reference;
        let def = reference.schema.entity_at(ty);
        match expr {
            Expr::Union(children) => children.iter().any(|c| self.expr(ty, id, c)),
            Expr::Intersect(children) => children.iter().all(|c| self.expr(ty, id, c)),
            Expr::Exclude(base, excluded) => {
                self.expr(ty, id, base) && !self.expr(ty, id, excluded)
            }
            Expr::Relation(r) => self.holds(ty, id, &def.relations[*r].name),
            Expr::Permission(p) => self.holds(ty, id, &def.permissions[*p].name),
            Expr::Attribute(a) => self.holds(ty, id, &def.attributes[*a].name),
            Expr::Arrow { via, targets } => {
                for t in reference.tuples_of(&def.name, id, &def.relations[*via]) {
                    for (target_ty, target) in targets {
                        if reference.schema.entity_at(*target_ty).name == t.subject.ty
                            && crate::stack::grow(|| self.expr(*target_ty, &t.subject.id, target))
                        {
                            return true;
                        }
                    }
                }
                false
            }
            Expr::Call { rule, args } => reference.call(ty, id, *rule, args),
        }
    }
}

/// `context`: `{"data": data, "tuples": [], "attributes": []}`.
fn context_variable(data: &serde_json::Map<String, serde_json::Value>) -> cel::Value {
    let mut map: HashMap<String, cel::Value> = HashMap::new();
    map.insert(
        "data".to_string(),
        json_value(&serde_json::Value::Object(data.clone())),
    );
    map.insert("tuples".to_string(), cel::Value::List(Arc::new(Vec::new())));
    map.insert(
        "attributes".to_string(),
        cel::Value::List(Arc::new(Vec::new())),
    );
    cel::Value::from(map)
}

/// JSON as CEL: integral numbers are `int` (or `uint` beyond `i64`), others `double`.
fn json_value(value: &serde_json::Value) -> cel::Value {
    use serde_json::Value as J;
    match value {
        J::Null => cel::Value::Null,
        J::Bool(b) => cel::Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                cel::Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                cel::Value::UInt(u)
            } else {
                cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => cel::Value::String(Arc::new(s.clone())),
        J::Array(items) => cel::Value::List(Arc::new(items.iter().map(json_value).collect())),
        J::Object(map) => {
            let map: HashMap<String, cel::Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect();
            cel::Value::from(map)
        }
    }
}

/// An attribute value as CEL.
fn attr_value(value: &AttrValue) -> cel::Value {
    fn list<T>(items: &[T], f: impl Fn(&T) -> cel::Value) -> cel::Value {
        cel::Value::List(Arc::new(items.iter().map(f).collect()))
    }
    match value {
        AttrValue::Boolean(b) => cel::Value::Bool(*b),
        AttrValue::String(s) => cel::Value::String(Arc::new(s.clone())),
        AttrValue::Integer(i) => cel::Value::Int(*i),
        AttrValue::Double(d) => cel::Value::Float(*d),
        AttrValue::BooleanArray(v) => list(v, |b| cel::Value::Bool(*b)),
        AttrValue::StringArray(v) => list(v, |s| cel::Value::String(Arc::new(s.clone()))),
        AttrValue::IntegerArray(v) => list(v, |i| cel::Value::Int(*i)),
        AttrValue::DoubleArray(v) => list(v, |d| cel::Value::Float(*d)),
    }
}

/// The empty value of a type, as CEL: false, "", 0, 0.0 or an empty list.
fn empty_value(ty: AttrType) -> cel::Value {
    match ty {
        AttrType::Boolean => cel::Value::Bool(false),
        AttrType::String => cel::Value::String(Arc::new(String::new())),
        AttrType::Integer => cel::Value::Int(0),
        AttrType::Double => cel::Value::Float(0.0),
        AttrType::BooleanArray
        | AttrType::StringArray
        | AttrType::IntegerArray
        | AttrType::DoubleArray => cel::Value::List(Arc::new(Vec::new())),
    }
}
