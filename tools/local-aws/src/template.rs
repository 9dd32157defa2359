//! Reads `template.yaml`, the one definition of the AWS resources: the
//! DynamoDB tables, S3 buckets and SQS queues to create locally, the
//! environment every function gets (`Globals.Function.Environment`), and the
//! event sources (SQS, schedule) that drive the dispatcher and the sweeper.
//!
//! Intrinsic functions are evaluated the way CloudFormation would for a
//! stack deployed with the parameters' defaults: `Ref`, `Fn::GetAtt` (`Arn`),
//! `Fn::Sub`, `Fn::If`, `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`,
//! `AWS::NoValue`, `AWS::Region`, `AWS::AccountId`, `AWS::Partition`,
//! `AWS::StackName`. Anything else is an error naming the place, so a
//! template change that this tool cannot follow fails loudly.

use serde_norway::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A template this tool cannot read or evaluate.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template is not YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("{0}")]
    Invalid(String),
}

fn invalid<T>(what: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError::Invalid(what.into()))
}

/// The kind of a provisioned resource, with what `Ref` and `GetAtt Arn`
/// evaluate to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Physical {
    /// `Ref`: table name, bucket name or queue URL.
    pub reference: String,
    /// `Fn::GetAtt … Arn`.
    pub arn: String,
}

/// One key attribute (`AttributeName`, `KeyType` = HASH | RANGE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub attribute: String,
    pub key_type: String,
}

/// A global or local secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub keys: Vec<KeyElement>,
    /// `ALL`, `KEYS_ONLY` (`INCLUDE` is refused: the template has none).
    pub projection: String,
}

/// An `AWS::DynamoDB::Table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    /// (name, type) pairs: `S`, `N`, `B`.
    pub attributes: Vec<(String, String)>,
    pub keys: Vec<KeyElement>,
    pub global_indexes: Vec<IndexSpec>,
    pub local_indexes: Vec<IndexSpec>,
    /// `TimeToLiveSpecification.AttributeName` when enabled.
    pub ttl_attribute: Option<String>,
}

/// An `AWS::SQS::Queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub visibility_timeout_s: Option<u64>,
    pub retention_s: Option<u64>,
    /// `RedrivePolicy`: the dead-letter queue's logical id and `maxReceiveCount`.
    pub redrive: Option<(String, u64)>,
}

/// An `AWS::S3::Bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub logical_id: String,
    pub versioned: bool,
    /// `SSEAlgorithm` of the default encryption, if any.
    pub encryption: Option<String>,
    pub public_access_blocked: bool,
}

/// What feeds a function (its `Events`), other than the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// `Type: SQS`: the queue's logical id and the batch size.
    Sqs {
        function: String,
        queue: String,
        batch_size: u64,
    },
    /// `Type: Schedule` with a `rate(…)` expression, in seconds.
    Schedule { function: String, every_s: u64 },
}

/// The parsed template and the parameter values of a default deployment.
pub struct Template {
    doc: Value,
}

/// Short-form (`!Ref`) or long-form (`Ref:` / `Fn::Sub:`) intrinsic of a value.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let name = name.strip_prefix("Fn::").unwrap_or(name);
            Some((name.to_string(), &t.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, inner) = m.iter().next()?;
            let k = k.as_str()?;
            if k == "Ref" {
                Some(("Ref".to_string(), inner))
            } else {
                k.strip_prefix("Fn::").map(|name| (name.to_string(), inner))
            }
        }
        _ => None,
    }
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()?.get(key)
}

fn text(v: &Value, what: &str) -> Result<String, TemplateError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => invalid(format!("{what}: expected a literal")),
    }
}

fn number(v: &Value, what: &str) -> Result<u64, TemplateError> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map_or_else(|| invalid(format!("{what}: not an integer")), Ok),
        Value::String(s) => s
            .parse()
            .or_else(|_| invalid(format!("{what}: not an integer"))),
        _ => invalid(format!("{what}: expected a number")),
    }
}

fn key_schema(v: Option<&Value>, what: &str) -> Result<Vec<KeyElement>, TemplateError> {
    let Some(items) = v.and_then(Value::as_sequence) else {
        return invalid(format!("{what}: KeySchema missing"));
    };
    items
        .iter()
        .map(|k| {
            Ok(KeyElement {
                attribute: text(
                    get(k, "AttributeName").unwrap_or(&Value::Null),
                    &format!("{what}: AttributeName"),
                )?,
                key_type: text(
                    get(k, "KeyType").unwrap_or(&Value::Null),
                    &format!("{what}: KeyType"),
                )?,
            })
        })
        .collect()
}

fn indexes(v: Option<&Value>, what: &str) -> Result<Vec<IndexSpec>, TemplateError> {
    let Some(items) = v.and_then(Value::as_sequence) else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|i| {
            let name = text(
                get(i, "IndexName").unwrap_or(&Value::Null),
                &format!("{what}: IndexName"),
            )?;
            let projection = get(i, "Projection")
                .and_then(|p| get(p, "ProjectionType"))
                .map(|p| text(p, &format!("{what} {name}: ProjectionType")))
                .transpose()?
                .unwrap_or_else(|| "KEYS_ONLY".to_string());
            if projection != "ALL" && projection != "KEYS_ONLY" {
                return invalid(format!(
                    "{what} {name}: projection {projection} unsupported"
                ));
            }
            Ok(IndexSpec {
                keys: key_schema(get(i, "KeySchema"), &format!("{what} {name}"))?,
                name,
                projection,
            })
        })
        .collect()
}

impl TableSpec {
    /// One table holding both `self`'s and `other`'s items (same key
    /// schema): the union of their attributes, indexes and TTL. The engine
    /// may keep executions and awaits in one table (`EXECUTION.md` §10.5).
    pub fn merged(&self, other: &TableSpec) -> TableSpec {
        let mut out = self.clone();
        for a in &other.attributes {
            if !out.attributes.iter().any(|b| b.0 == a.0) {
                out.attributes.push(a.clone());
            }
        }
        for i in &other.global_indexes {
            if !out.global_indexes.iter().any(|j| j.name == i.name) {
                out.global_indexes.push(i.clone());
            }
        }
        out.ttl_attribute = out.ttl_attribute.or_else(|| other.ttl_attribute.clone());
        out.logical_id = format!("{}+{}", self.logical_id, other.logical_id);
        out
    }
}

impl Template {
    /// This repository's `template.yaml` (for the tests of every crate that
    /// create tables as the template defines them).
    pub fn of_this_repository() -> Result<Self, TemplateError> {
        Self::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../template.yaml"
        )))
    }

    /// The table with logical id `logical_id`.
    pub fn table(&self, logical_id: &str) -> Result<TableSpec, TemplateError> {
        self.tables()?
            .into_iter()
            .find(|t| t.logical_id == logical_id)
            .map_or_else(
                || invalid(format!("no table {logical_id} in the template")),
                Ok,
            )
    }

    /// Reads and parses the template at `path`.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses template text.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let doc: Value = serde_norway::from_str(text)?;
        if get(&doc, "Resources").and_then(Value::as_mapping).is_none() {
            return invalid("template has no Resources");
        }
        Ok(Self { doc })
    }

    fn resources(&self) -> &Mapping {
        get(&self.doc, "Resources")
            .and_then(Value::as_mapping)
            .expect("checked in parse")
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (String, &'a Value)> + 'a {
        self.resources()
            .iter()
            .filter(move |(_, v)| get(v, "Type").and_then(Value::as_str) == Some(ty))
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v))
    }

    fn properties(resource: &Value) -> &Value {
        static EMPTY: Value = Value::Null;
        get(resource, "Properties").unwrap_or(&EMPTY)
    }

    /// Every `AWS::DynamoDB::Table`, in template order.
    pub fn tables(&self) -> Result<Vec<TableSpec>, TemplateError> {
        self.of_type("AWS::DynamoDB::Table")
            .map(|(id, r)| {
                let p = Self::properties(r);
                let attributes = get(p, "AttributeDefinitions")
                    .and_then(Value::as_sequence)
                    .map(|a| {
                        a.iter()
                            .map(|d| {
                                Ok((
                                    text(
                                        get(d, "AttributeName").unwrap_or(&Value::Null),
                                        &format!("{id}: AttributeName"),
                                    )?,
                                    text(
                                        get(d, "AttributeType").unwrap_or(&Value::Null),
                                        &format!("{id}: AttributeType"),
                                    )?,
                                ))
                            })
                            .collect::<Result<Vec<_>, TemplateError>>()
                    })
                    .transpose()?
                    .unwrap_or_default();
                let ttl = get(p, "TimeToLiveSpecification").and_then(|t| {
                    let enabled = get(t, "Enabled").and_then(Value::as_bool) == Some(true);
                    enabled
                        .then(|| get(t, "AttributeName").and_then(Value::as_str))
                        .flatten()
                        .map(str::to_string)
                });
                Ok(TableSpec {
                    keys: key_schema(get(p, "KeySchema"), &id)?,
                    global_indexes: indexes(get(p, "GlobalSecondaryIndexes"), &id)?,
                    local_indexes: indexes(get(p, "LocalSecondaryIndexes"), &id)?,
                    attributes,
                    ttl_attribute: ttl,
                    logical_id: id,
                })
            })
            .collect()
    }

    /// Every `AWS::SQS::Queue`, dead-letter targets before the queues that
    /// name them (so their ARNs exist when the redrive policy is set).
    pub fn queues(&self) -> Result<Vec<QueueSpec>, TemplateError> {
        let mut queues = self
            .of_type("AWS::SQS::Queue")
            .map(|(id, r)| {
                let p = Self::properties(r);
                let opt = |key: &str| {
                    get(p, key)
                        .map(|v| number(v, &format!("{id}: {key}")))
                        .transpose()
                };
                let redrive = match get(p, "RedrivePolicy") {
                    None => None,
                    Some(policy) => {
                        let target = get(policy, "deadLetterTargetArn")
                            .and_then(intrinsic)
                            .and_then(|(f, v)| (f == "GetAtt").then_some(v))
                            .and_then(|v| match v {
                                Value::String(s) => s.strip_suffix(".Arn").map(str::to_string),
                                Value::Sequence(s) => s.first()?.as_str().map(str::to_string),
                                _ => None,
                            });
                        let Some(target) = target else {
                            return invalid(format!(
                                "{id}: deadLetterTargetArn must be !GetAtt <Queue>.Arn"
                            ));
                        };
                        let max = number(
                            get(policy, "maxReceiveCount").unwrap_or(&Value::Null),
                            &format!("{id}: maxReceiveCount"),
                        )?;
                        Some((target, max))
                    }
                };
                Ok(QueueSpec {
                    visibility_timeout_s: opt("VisibilityTimeout")?,
                    retention_s: opt("MessageRetentionPeriod")?,
                    redrive,
                    logical_id: id,
                })
            })
            .collect::<Result<Vec<_>, TemplateError>>()?;
        queues.sort_by_key(|q| q.redrive.is_some());
        Ok(queues)
    }

    /// Every `AWS::S3::Bucket`.
    pub fn buckets(&self) -> Result<Vec<BucketSpec>, TemplateError> {
        self.of_type("AWS::S3::Bucket")
            .map(|(id, r)| {
                let p = Self::properties(r);
                let versioned = get(p, "VersioningConfiguration")
                    .and_then(|v| get(v, "Status"))
                    .and_then(Value::as_str)
                    == Some("Enabled");
                let encryption = get(p, "BucketEncryption")
                    .and_then(|e| get(e, "ServerSideEncryptionConfiguration"))
                    .and_then(Value::as_sequence)
                    .and_then(|rules| rules.first())
                    .and_then(|r| get(r, "ServerSideEncryptionByDefault"))
                    .and_then(|d| get(d, "SSEAlgorithm"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let public_access_blocked = get(p, "PublicAccessBlockConfiguration")
                    .and_then(Value::as_mapping)
                    .is_some_and(|m| m.values().all(|v| v.as_bool() == Some(true)));
                Ok(BucketSpec {
                    logical_id: id,
                    versioned,
                    encryption,
                    public_access_blocked,
                })
            })
            .collect()
    }

    /// The binary a serverless function is built from (`CodeUri:
    /// target/lambda/<binary>/`), by the function's logical id.
    pub fn function_binaries(&self) -> Result<BTreeMap<String, String>, TemplateError> {
        self.of_type("AWS::Serverless::Function")
            .map(|(id, r)| {
                let uri = get(Self::properties(r), "CodeUri")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let Some(binary) = uri
                    .trim_end_matches('/')
                    .strip_prefix("target/lambda/")
                    .filter(|b| !b.is_empty() && !b.contains('/'))
                else {
                    return invalid(format!("{id}: CodeUri is not target/lambda/<binary>/"));
                };
                Ok((id, binary.to_string()))
            })
            .collect()
    }

    /// The SQS and schedule event sources of every function, by binary name.
    pub fn event_sources(&self) -> Result<Vec<EventSource>, TemplateError> {
        let binaries = self.function_binaries()?;
        let mut out = Vec::new();
        for (id, r) in self.of_type("AWS::Serverless::Function") {
            let function = binaries[&id].clone();
            let events = get(Self::properties(r), "Events").and_then(Value::as_mapping);
            for (name, event) in events.into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                let props = get(event, "Properties").unwrap_or(&Value::Null);
                match get(event, "Type").and_then(Value::as_str) {
                    Some("SQS") => {
                        let queue = get(props, "Queue")
                            .and_then(intrinsic)
                            .and_then(|(f, v)| (f == "GetAtt").then_some(v))
                            .and_then(|v| match v {
                                Value::String(s) => s.strip_suffix(".Arn").map(str::to_string),
                                Value::Sequence(s) => s.first()?.as_str().map(str::to_string),
                                _ => None,
                            });
                        let Some(queue) = queue else {
                            return invalid(format!(
                                "{id}.{name}: Queue must be !GetAtt <Queue>.Arn"
                            ));
                        };
                        let batch_size = get(props, "BatchSize")
                            .map(|b| number(b, &format!("{id}.{name}: BatchSize")))
                            .transpose()?
                            .unwrap_or(10);
                        out.push(EventSource::Sqs {
                            function: function.clone(),
                            queue,
                            batch_size,
                        });
                    }
                    Some("Schedule") => {
                        let expr = get(props, "Schedule")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let every_s = rate_seconds(expr).ok_or_else(|| {
                            TemplateError::Invalid(format!(
                                "{id}.{name}: only rate(…) schedules are supported, got {expr:?}"
                            ))
                        })?;
                        out.push(EventSource::Schedule {
                            function: function.clone(),
                            every_s,
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// `Globals.Function.Environment.Variables` evaluated against the
    /// provisioned resources: (name, value) for every variable that is set
    /// (an `AWS::NoValue` branch leaves it out), in template order.
    pub fn function_environment(
        &self,
        ctx: &Context,
    ) -> Result<Vec<(String, String)>, TemplateError> {
        let vars = get(&self.doc, "Globals")
            .and_then(|g| get(g, "Function"))
            .and_then(|f| get(f, "Environment"))
            .and_then(|e| get(e, "Variables"))
            .and_then(Value::as_mapping);
        let mut out = Vec::new();
        for (k, v) in vars.into_iter().flatten() {
            let name = k.as_str().unwrap_or_default().to_string();
            if let Some(value) = self.eval(v, ctx, &name)? {
                out.push((name, value));
            }
        }
        Ok(out)
    }

    fn parameter_default(&self, name: &str) -> Option<String> {
        let p = get(&self.doc, "Parameters").and_then(|p| get(p, name))?;
        get(p, "Default").and_then(|d| text(d, name).ok())
    }

    fn condition(&self, name: &str, ctx: &Context) -> Result<bool, TemplateError> {
        let Some(c) = get(&self.doc, "Conditions").and_then(|c| get(c, name)) else {
            return invalid(format!("unknown condition {name}"));
        };
        self.truth(c, ctx, name)
    }

    fn truth(&self, v: &Value, ctx: &Context, at: &str) -> Result<bool, TemplateError> {
        let Some((f, args)) = intrinsic(v) else {
            return invalid(format!("{at}: a condition must be an intrinsic"));
        };
        let list = || args.as_sequence().map(Vec::as_slice).unwrap_or_default();
        match f.as_str() {
            "Equals" => match list() {
                [a, b] => Ok(self.eval(a, ctx, at)? == self.eval(b, ctx, at)?),
                _ => invalid(format!("{at}: Equals takes two values")),
            },
            "Not" => match list() {
                [c] => Ok(!self.truth(c, ctx, at)?),
                _ => invalid(format!("{at}: Not takes one condition")),
            },
            "And" => list()
                .iter()
                .try_fold(true, |acc, c| Ok(acc && self.truth(c, ctx, at)?)),
            "Or" => list()
                .iter()
                .try_fold(false, |acc, c| Ok(acc || self.truth(c, ctx, at)?)),
            "Condition" => self.condition(&text(args, at)?, ctx),
            other => invalid(format!("{at}: {other} is not a condition function")),
        }
    }

    /// Evaluates a value; `None` for `AWS::NoValue`.
    fn eval(&self, v: &Value, ctx: &Context, at: &str) -> Result<Option<String>, TemplateError> {
        let Some((f, args)) = intrinsic(v) else {
            return text(v, at).map(Some);
        };
        match f.as_str() {
            "Ref" => {
                let name = text(args, at)?;
                if name == "AWS::NoValue" {
                    return Ok(None);
                }
                self.reference(&name, ctx, at).map(Some)
            }
            "GetAtt" => {
                let (id, attr) = match args {
                    Value::String(s) => s
                        .split_once('.')
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .unwrap_or_default(),
                    Value::Sequence(s) if s.len() == 2 => (text(&s[0], at)?, text(&s[1], at)?),
                    _ => Default::default(),
                };
                self.attribute(&id, &attr, ctx, at).map(Some)
            }
            "Sub" => {
                let template = text(args, at)?;
                self.substitute(&template, ctx, at).map(Some)
            }
            "If" => match args.as_sequence().map(Vec::as_slice) {
                Some([c, yes, no]) => {
                    let branch = if self.condition(&text(c, at)?, ctx)? {
                        yes
                    } else {
                        no
                    };
                    self.eval(branch, ctx, at)
                }
                _ => invalid(format!("{at}: If takes [condition, then, else]")),
            },
            other => invalid(format!("{at}: intrinsic {other} is not supported")),
        }
    }

    fn reference(&self, name: &str, ctx: &Context, at: &str) -> Result<String, TemplateError> {
        match name {
            "AWS::Region" => return Ok(ctx.region.clone()),
            "AWS::AccountId" => return Ok(ctx.account.clone()),
            "AWS::Partition" => return Ok("aws".to_string()),
            "AWS::StackName" => return Ok(ctx.stack.clone()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_string()),
            _ => {}
        }
        if let Some(p) = ctx.physical.get(name) {
            return Ok(p.reference.clone());
        }
        if let Some(d) = self.parameter_default(name) {
            return Ok(d);
        }
        invalid(format!(
            "{at}: Ref {name} is neither a provisioned resource nor a parameter with a default"
        ))
    }

    fn attribute(
        &self,
        id: &str,
        attr: &str,
        ctx: &Context,
        at: &str,
    ) -> Result<String, TemplateError> {
        match (ctx.physical.get(id), attr) {
            (Some(p), "Arn") => Ok(p.arn.clone()),
            _ => invalid(format!("{at}: GetAtt {id}.{attr} is not available locally")),
        }
    }

    fn substitute(&self, s: &str, ctx: &Context, at: &str) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return invalid(format!("{at}: unclosed ${{ in Sub"));
            };
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some((id, attr)) = name.split_once('.') {
                out.push_str(&self.attribute(id, attr, ctx, at)?);
            } else {
                out.push_str(&self.reference(name, ctx, at)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Parses `rate(N minute|minutes|hour|hours|day|days|second|seconds)`.
pub fn rate_seconds(expr: &str) -> Option<u64> {
    let inner = expr.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    let unit_s = match unit.trim().trim_end_matches('s') {
        "second" => 1,
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        _ => return None,
    };
    (n > 0).then_some(n * unit_s)
}

/// Where the template is evaluated: the stack's name, region and account,
/// and the physical resources created so far.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub stack: String,
    pub region: String,
    pub account: String,
    pub physical: BTreeMap<String, Physical>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
Parameters:
  Name:
    Type: String
    Default: /tpf/token
  Empty:
    Type: String
    Default: ""
Conditions:
  HasEmpty: !Not [!Equals [!Ref Empty, ""]]
Globals:
  Function:
    Environment:
      Variables:
        PLAIN: "true"
        NUMBER: 7
        TOKEN_REF: !Sub ssm:${Name}
        TABLE: !Ref T
        ROOTS: !If [HasEmpty, !Ref Empty, !Sub "s3://${B}/releases/"]
        GONE: !If [HasEmpty, x, !Ref AWS::NoValue]
        ARN: !GetAtt Q.Arn
        LONG: {"Fn::Sub": "${AWS::Region}-${!Literal}"}
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
  B:
    Type: AWS::S3::Bucket
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 300
      RedrivePolicy: {deadLetterTargetArn: !GetAtt D.Arn, maxReceiveCount: 5}
  D:
    Type: AWS::SQS::Queue
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: target/lambda/dispatcher/
      Events:
        Work: {Type: SQS, Properties: {Queue: !GetAtt Q.Arn, BatchSize: 1}}
        Tick: {Type: Schedule, Properties: {Schedule: rate(2 minutes)}}
"#;

    fn ctx() -> Context {
        let mut physical = BTreeMap::new();
        for (id, r) in [
            ("T", "t-name"),
            ("B", "b-name"),
            ("Q", "http://q"),
            ("D", "http://d"),
        ] {
            physical.insert(
                id.to_string(),
                Physical {
                    reference: r.to_string(),
                    arn: format!("arn:{id}"),
                },
            );
        }
        Context {
            stack: "s".into(),
            region: "eu-west-1".into(),
            account: "1".into(),
            physical,
        }
    }

    #[test]
    fn environment_is_evaluated_with_parameter_defaults_and_resources() {
        let t = Template::parse(SMALL).unwrap();
        let env = t.function_environment(&ctx()).unwrap();
        assert_eq!(
            env,
            [
                ("PLAIN", "true"),
                ("NUMBER", "7"),
                ("TOKEN_REF", "ssm:/tpf/token"),
                ("TABLE", "t-name"),
                ("ROOTS", "s3://b-name/releases/"),
                ("ARN", "arn:Q"),
                ("LONG", "eu-west-1-${Literal}"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn resources_and_event_sources_are_read() {
        let t = Template::parse(SMALL).unwrap();
        let tables = t.tables().unwrap();
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].ttl_attribute.as_deref(), Some("ttl"));
        assert_eq!(tables[0].keys[0].key_type, "HASH");
        let queues = t.queues().unwrap();
        assert_eq!(
            queues
                .iter()
                .map(|q| q.logical_id.as_str())
                .collect::<Vec<_>>(),
            ["D", "Q"],
            "dead-letter targets first"
        );
        assert_eq!(queues[1].redrive, Some(("D".to_string(), 5)));
        assert_eq!(t.buckets().unwrap().len(), 1);
        assert_eq!(
            t.event_sources().unwrap(),
            [
                EventSource::Sqs {
                    function: "dispatcher".into(),
                    queue: "Q".into(),
                    batch_size: 1
                },
                EventSource::Schedule {
                    function: "dispatcher".into(),
                    every_s: 120
                },
            ]
        );
    }

    #[test]
    fn unknown_references_and_intrinsics_are_errors() {
        let t = Template::parse(
            "Globals: {Function: {Environment: {Variables: {X: !Ref Nope, Y: !Join [a, [b]]}}}}\nResources: {}",
        )
        .unwrap();
        let e = t
            .function_environment(&Context::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("Ref Nope"), "{e}");
    }

    #[test]
    fn rates() {
        assert_eq!(rate_seconds("rate(1 minute)"), Some(60));
        assert_eq!(rate_seconds("rate(5 minutes)"), Some(300));
        assert_eq!(rate_seconds("rate(0 minutes)"), None);
        assert_eq!(rate_seconds("cron(0 * * * ? *)"), None);
    }
}
