//! The SAM template (`template.yaml`) against the code and the spec:
//! (a) the HTTP API routes are exactly the route table's, each on the
//! function that serves it; (b) each function's IAM statements name only the
//! tables it may use, read-only where it only reads; (c) the work queue's
//! visibility timeout covers six dispatcher timeouts (`EXECUTION.md` §1);
//! (d) every table's keys and indexes are the spec's (`EXECUTION.md` §10.5,
//! `RELEASES.md` §5 and §6.6).
//!
//! The template's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, `!If`) are read
//! as tagged YAML values; the long forms (`Ref:`, `Fn::GetAtt:`, …) are
//! understood too.

use serde_norway::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use tpf_core::http::routes::ROUTES;

const FUNCTIONS: [&str; 5] = [
    "control-plane",
    "release-admin",
    "worker-lifecycle",
    "dispatcher",
    "sweeper",
];

// ------------------------------------------------------------------ helpers

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml at the repository root");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

/// `v[key]`, panicking with the path when absent.
fn at<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("missing `{key}` in {}", short(v)))
}

fn short(v: &Value) -> String {
    let s = serde_norway::to_string(v).unwrap_or_default();
    s.chars().take(300).collect()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    at(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {}", short(v)))
}

fn mapping<'a>(v: &'a Value, key: &str) -> &'a Mapping {
    at(v, key)
        .as_mapping()
        .unwrap_or_else(|| panic!("`{key}` is not a mapping in {}", short(v)))
}

fn seq<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    at(v, key)
        .as_sequence()
        .unwrap_or_else(|| panic!("`{key}` is not a sequence in {}", short(v)))
}

/// A string or a list of strings (IAM `Action`).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_string())
            .collect(),
        other => panic!(
            "expected a string or a list of strings, got {}",
            short(other)
        ),
    }
}

fn number(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("a non-negative integer"),
        Value::String(s) => s.parse().expect("an integer"),
        other => panic!("expected a number, got {}", short(other)),
    }
}

/// Logical ids named by `${Name}` / `${Name.Attr}` in a `Fn::Sub` string
/// (pseudo parameters `${AWS::…}` and literals `${!…}` excluded).
fn sub_names(s: &str, out: &mut BTreeSet<String>) {
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') && !name.starts_with("AWS::") {
            out.insert(name.split('.').next().unwrap_or(name).to_string());
        }
        rest = &after[end + 1..];
    }
}

/// Every logical id (resource or parameter) a value refers to, through
/// `Ref`, `GetAtt` and `Sub`, at any depth (inside `If` branches too).
fn refs(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Tagged(t) => {
                let inner = &t.value;
                if t.tag == "Ref" {
                    if let Some(s) = inner.as_str() {
                        out.insert(s.to_string());
                    }
                } else if t.tag == "GetAtt" {
                    match inner {
                        Value::String(s) => {
                            out.insert(s.split('.').next().unwrap_or(s).to_string());
                        }
                        Value::Sequence(parts) => {
                            if let Some(s) = parts.first().and_then(Value::as_str) {
                                out.insert(s.to_string());
                            }
                        }
                        _ => {}
                    }
                } else if t.tag == "Sub" {
                    match inner {
                        Value::String(s) => sub_names(s, out),
                        Value::Sequence(parts) => {
                            if let Some(s) = parts.first().and_then(Value::as_str) {
                                sub_names(s, out);
                            }
                            parts.iter().skip(1).for_each(|p| walk(p, out));
                        }
                        _ => {}
                    }
                } else {
                    walk(inner, out);
                }
            }
            Value::Mapping(m) => {
                for (k, val) in m {
                    match (k.as_str(), val) {
                        (Some("Ref"), Value::String(s)) => {
                            out.insert(s.clone());
                        }
                        (Some("Fn::GetAtt"), Value::String(s)) => {
                            out.insert(s.split('.').next().unwrap_or(s).to_string());
                        }
                        (Some("Fn::GetAtt"), Value::Sequence(p)) => {
                            if let Some(s) = p.first().and_then(Value::as_str) {
                                out.insert(s.to_string());
                            }
                        }
                        (Some("Fn::Sub"), Value::String(s)) => sub_names(s, out),
                        _ => walk(val, out),
                    }
                }
            }
            Value::Sequence(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut out);
    out
}

/// The single logical id a value refers to (`!Ref X`, `!GetAtt X.Arn`).
fn single_ref(v: &Value) -> String {
    let r = refs(v);
    assert_eq!(r.len(), 1, "expected one reference in {}", short(v));
    r.into_iter().next().unwrap()
}

/// Index names that `${Table.Arn}/index/<name>` strings in `v` mention, per table.
fn index_arns(v: &Value, out: &mut BTreeSet<(String, String)>) {
    match v {
        Value::Tagged(t) if t.tag == "Sub" => {
            if let Some(s) = t.value.as_str() {
                if let Some((head, index)) = s.split_once("/index/") {
                    let mut names = BTreeSet::new();
                    sub_names(head, &mut names);
                    for n in names {
                        out.insert((n, index.to_string()));
                    }
                }
            }
        }
        Value::Tagged(t) => index_arns(&t.value, out),
        Value::Mapping(m) => m.values().for_each(|x| index_arns(x, out)),
        Value::Sequence(items) => items.iter().for_each(|x| index_arns(x, out)),
        _ => {}
    }
}

struct Template {
    root: Value,
}

impl Template {
    fn load() -> Self {
        Template { root: template() }
    }

    fn resources(&self) -> &Mapping {
        mapping(&self.root, "Resources")
    }

    fn resource(&self, id: &str) -> &Value {
        self.resources()
            .get(id)
            .unwrap_or_else(|| panic!("no resource {id}"))
    }

    fn resources_of_type(&self, ty: &str) -> Vec<(String, &Value)> {
        self.resources()
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
            .map(|(k, r)| (k.as_str().unwrap().to_string(), r))
            .collect()
    }

    /// Function name (the binary, from `CodeUri: target/lambda/<name>/`) →
    /// (logical id, resource).
    fn functions(&self) -> BTreeMap<String, (String, &Value)> {
        let mut out = BTreeMap::new();
        for (id, r) in self.resources_of_type("AWS::Serverless::Function") {
            let uri = text(at(r, "Properties"), "CodeUri");
            let name = uri
                .strip_prefix("target/lambda/")
                .and_then(|s| s.strip_suffix('/'))
                .unwrap_or_else(|| panic!("{id}: CodeUri {uri} is not target/lambda/<name>/"));
            assert!(
                out.insert(name.to_string(), (id.clone(), r)).is_none(),
                "two functions built from {uri}"
            );
        }
        out
    }

    fn function(&self, name: &str) -> (String, &Value) {
        let (id, r) = self
            .functions()
            .remove(name)
            .unwrap_or_else(|| panic!("no function with CodeUri target/lambda/{name}/"));
        (id, r)
    }

    fn global_env(&self) -> &Value {
        at(
            at(at(at(&self.root, "Globals"), "Function"), "Environment"),
            "Variables",
        )
    }

    /// The table a global environment variable names (`!Ref Table`).
    fn table_of_env(&self, var: &str) -> String {
        let id = single_ref(at(self.global_env(), var));
        assert_eq!(
            text(self.resource(&id), "Type"),
            "AWS::DynamoDB::Table",
            "{var} must name a DynamoDB table"
        );
        id
    }

    fn timeout(&self, function: &Value) -> u64 {
        let props = at(function, "Properties");
        number(
            props
                .get("Timeout")
                .unwrap_or_else(|| at(at(at(&self.root, "Globals"), "Function"), "Timeout")),
        )
    }
}

fn events(function: &Value) -> Vec<(String, &Value)> {
    at(function, "Properties")
        .get("Events")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), v))
                .collect()
        })
        .unwrap_or_default()
}

// ------------------------------------------------------------------- (a)

/// The function a route table row runs on in AWS ("*" = control-plane).
fn deployed_function(function: &str) -> &str {
    if function == "*" {
        "control-plane"
    } else {
        function
    }
}

#[test]
fn every_function_is_built_from_its_binary() {
    let t = Template::load();
    let names: BTreeSet<String> = t.functions().into_keys().collect();
    let expected: BTreeSet<String> = FUNCTIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, expected);
    let globals = at(at(&t.root, "Globals"), "Function");
    assert_eq!(text(globals, "Runtime"), "provided.al2023");
    assert_eq!(text(globals, "Handler"), "bootstrap");
    assert_eq!(strings(at(globals, "Architectures")), ["arm64"]);
}

#[test]
fn http_api_routes_are_the_route_table() {
    let t = Template::load();
    let (api_id, _) = t
        .resources_of_type("AWS::Serverless::HttpApi")
        .pop()
        .expect("an explicit AWS::Serverless::HttpApi");
    assert_eq!(
        t.resources_of_type("AWS::Serverless::HttpApi").len(),
        1,
        "one HTTP API"
    );
    assert_eq!(
        text(at(t.resource(&api_id), "Properties"), "StageName"),
        "$default",
        "no stage prefix in the paths (API.md §1.1)"
    );

    // What the route table says.
    let mut owner_of_path: BTreeMap<&str, &str> = BTreeMap::new();
    let mut expected: BTreeSet<(String, String, String)> = BTreeSet::new();
    for r in ROUTES.iter() {
        let f = deployed_function(r.function);
        assert!(
            FUNCTIONS.contains(&f),
            "route table names unknown function {f}"
        );
        if let Some(prev) = owner_of_path.insert(r.path, f) {
            assert_eq!(prev, f, "{} is served by two functions", r.path);
        }
        expected.insert((
            r.method.as_str().to_string(),
            r.path.to_string(),
            f.to_string(),
        ));
    }

    // What the template routes.
    let mut routed: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut any: Vec<(String, String)> = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (name, (fid, f)) in t.functions() {
        for (event, e) in events(f) {
            if text(e, "Type") != "HttpApi" {
                continue;
            }
            let props = at(e, "Properties");
            assert_eq!(
                single_ref(at(props, "ApiId")),
                api_id,
                "{fid}.{event} must attach to the explicit HTTP API"
            );
            let method = text(props, "Method").to_ascii_uppercase();
            let path = text(props, "Path").to_string();
            assert!(
                seen.insert((method.clone(), path.clone())),
                "{method} {path} is routed twice"
            );
            if method == "ANY" {
                any.push((path, name.clone()));
            } else {
                routed.insert((method, path, name.clone()));
            }
        }
    }

    let missing: Vec<_> = expected.difference(&routed).collect();
    let extra: Vec<_> = routed.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "route table rows without a matching HttpApi event (method, path, function): {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "HttpApi events not in the route table (or on the wrong function): {extra:?}"
    );

    // `$default` → control-plane (JSON 404 for every unknown path), and
    // `ANY` on a path only to the function owning it (405 + Allow there).
    let mut defaults = 0;
    for (path, function) in &any {
        if path == "$default" {
            defaults += 1;
            assert_eq!(function, "control-plane", "$default goes to control-plane");
            continue;
        }
        let owner = owner_of_path
            .get(path.as_str())
            .unwrap_or_else(|| panic!("ANY {path} is not a path of the route table"));
        assert_eq!(owner, function, "ANY {path} must go to {owner}");
    }
    assert_eq!(defaults, 1, "exactly one $default route");
    for (path, owner) in &owner_of_path {
        if *owner != "control-plane" {
            assert!(
                any.iter().any(|(p, f)| p == path && f == owner),
                "{path}: a wrong method must reach {owner} (ANY route) to answer 405, \
                 not control-plane's 404"
            );
        }
    }
}

// ------------------------------------------------------------------- (b)

const DYNAMO_READ: [&str; 4] = [
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
];

/// Statements of a function's inline policies; `!If` branches count both.
fn statements(function_id: &str, function: &Value) -> Vec<Value> {
    fn flatten(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Tagged(t) if t.tag == "If" => {
                for branch in t.value.as_sequence().expect("If [c, a, b]").iter().skip(1) {
                    flatten(branch, out);
                }
            }
            Value::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some("AWS::NoValue") => {}
            Value::Mapping(_) => out.push(v.clone()),
            other => panic!("unexpected statement {}", short(other)),
        }
    }
    let mut out = Vec::new();
    let Some(policies) = at(function, "Properties").get("Policies") else {
        return out;
    };
    for p in policies.as_sequence().expect("Policies is a list") {
        let doc = p.get("Statement").unwrap_or_else(|| {
            panic!(
                "{function_id}: every policy is an inline document with explicit actions \
                 and resources (no policy templates or managed policies), got {}",
                short(p)
            )
        });
        for s in doc.as_sequence().expect("Statement is a list") {
            flatten(s, &mut out);
        }
    }
    out
}

#[test]
fn each_function_names_only_its_own_tables() {
    let t = Template::load();
    let release = t.table_of_env("TPF_DYNAMO_RELEASE_TABLE");
    let worker = t.table_of_env("TPF_DYNAMO_WORKER_TABLE");
    let execution = t.table_of_env("TPF_DYNAMO_EXECUTION_TABLE");
    let awaits = t.table_of_env("TPF_DYNAMO_AWAIT_TABLE");
    let all: BTreeSet<String> = t
        .resources_of_type("AWS::DynamoDB::Table")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        all,
        [&release, &worker, &execution, &awaits]
            .into_iter()
            .cloned()
            .collect(),
        "exactly the four tables"
    );

    // (read-write, read-only) per function: RELEASES.md §8, EXECUTION.md §10.
    let engine = [execution.as_str(), awaits.as_str()];
    let allowed: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::from([
        (
            "control-plane",
            (engine.to_vec(), vec![release.as_str(), worker.as_str()]),
        ),
        (
            "dispatcher",
            (engine.to_vec(), vec![release.as_str(), worker.as_str()]),
        ),
        // The sweeper reads the pinned release for the dead letter of a
        // timed-out await (transport, platform: EXECUTION.md §3.8).
        ("sweeper", (engine.to_vec(), vec![release.as_str()])),
        ("release-admin", (vec![release.as_str()], vec![])),
        ("worker-lifecycle", (vec![worker.as_str()], vec![])),
    ]);

    for (name, (fid, f)) in t.functions() {
        let (rw, ro) = &allowed[name.as_str()];
        let mut written: BTreeSet<String> = BTreeSet::new();
        let mut read: BTreeSet<String> = BTreeSet::new();
        let mut indexes: BTreeSet<(String, String)> = BTreeSet::new();
        for s in statements(&fid, f) {
            assert_eq!(text(&s, "Effect"), "Allow", "{fid}: only Allow statements");
            let actions = strings(at(&s, "Action"));
            let resource = at(&s, "Resource");
            let resource_strings: Vec<&str> = match resource {
                Value::String(x) => vec![x.as_str()],
                Value::Sequence(xs) => xs.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            assert!(
                !resource_strings.contains(&"*"),
                "{fid}: no statement on Resource \"*\""
            );
            let tables: BTreeSet<String> = refs(resource)
                .into_iter()
                .filter(|r| all.contains(r))
                .collect();
            let dynamo: Vec<&String> = actions
                .iter()
                .filter(|a| a.starts_with("dynamodb:"))
                .collect();
            assert!(
                dynamo.iter().all(|a| !a.contains('*')),
                "{fid}: DynamoDB actions are listed one by one, got {dynamo:?}"
            );
            assert_eq!(
                dynamo.is_empty(),
                tables.is_empty(),
                "{fid}: DynamoDB actions go with table resources and only with them: {}",
                short(&s)
            );
            let writes = dynamo.iter().any(|a| !DYNAMO_READ.contains(&a.as_str()));
            for table in tables {
                assert!(
                    rw.contains(&table.as_str()) || ro.contains(&table.as_str()),
                    "{fid} ({name}) must not name table {table}"
                );
                if writes {
                    assert!(
                        rw.contains(&table.as_str()),
                        "{fid} ({name}) may only read {table}, got {dynamo:?}"
                    );
                    written.insert(table);
                } else {
                    read.insert(table);
                }
            }
            index_arns(resource, &mut indexes);
        }
        for table in rw {
            assert!(
                written.contains(*table),
                "{fid} ({name}) needs read-write access to {table}"
            );
        }
        for table in ro {
            assert!(
                read.contains(*table) || written.contains(*table),
                "{fid} ({name}) needs read access to {table}"
            );
        }
        // Index ARNs name indexes that exist, on the table they belong to.
        for (table, index) in indexes {
            let props = at(t.resource(&table), "Properties");
            let defined: Vec<&str> = ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"]
                .iter()
                .filter_map(|k| props.get(*k).and_then(Value::as_sequence))
                .flatten()
                .map(|i| text(i, "IndexName"))
                .collect();
            assert!(
                defined.contains(&index.as_str()),
                "{fid}: {table} has no index {index} (has {defined:?})"
            );
        }
    }
}

// ------------------------------------------------------------------- (c)

#[test]
fn work_queue_outlasts_six_dispatcher_timeouts() {
    let t = Template::load();
    let (fid, dispatcher) = t.function("dispatcher");
    let timeout = t.timeout(dispatcher);
    // EXECUTION.md §1: connect + request timeout + 10 s ≤ timeout ≤ lease.
    assert!(
        (42..=60).contains(&timeout),
        "{fid}: timeout {timeout} s must lie between 42 s and the 60 s lease"
    );

    let sqs: Vec<_> = events(dispatcher)
        .into_iter()
        .filter(|(_, e)| text(e, "Type") == "SQS")
        .collect();
    assert_eq!(sqs.len(), 1, "{fid}: one SQS event source");
    let props = at(sqs[0].1, "Properties");
    assert_eq!(number(at(props, "BatchSize")), 1, "batch size 1");
    assert_eq!(
        strings(at(props, "FunctionResponseTypes")),
        ["ReportBatchItemFailures"],
        "partial batch responses (EXECUTION.md §9.1)"
    );
    let queue_id = single_ref(at(props, "Queue"));
    assert_eq!(
        single_ref(at(t.global_env(), "TPF_QUEUE_URL")),
        queue_id,
        "the dispatcher consumes the queue TPF_QUEUE_URL names"
    );

    let queue = at(t.resource(&queue_id), "Properties");
    let visibility = number(at(queue, "VisibilityTimeout"));
    assert!(
        visibility >= 6 * timeout,
        "{queue_id}: VisibilityTimeout {visibility} s < 6 × dispatcher timeout {timeout} s"
    );
    let redrive = at(queue, "RedrivePolicy");
    let dlq = single_ref(at(redrive, "deadLetterTargetArn"));
    assert_ne!(dlq, queue_id, "the work queue has its own redrive DLQ");
    assert_ne!(
        dlq,
        single_ref(at(t.global_env(), "TPF_DLQ_URL")),
        "the redrive DLQ is not the dead-letter sink"
    );
}

// ------------------------------------------------------------------- (d)

struct Index {
    name: &'static str,
    hash: &'static str,
    range: &'static str,
    projection: &'static str,
}

struct TableSpec {
    env: &'static str,
    hash: &'static str,
    range: &'static str,
    global: &'static [Index],
    local: &'static [Index],
    ttl: Option<&'static str>,
}

const TABLES: [TableSpec; 4] = [
    // RELEASES.md §5.
    TableSpec {
        env: "TPF_DYNAMO_RELEASE_TABLE",
        hash: "registry_key",
        range: "registry_sort",
        global: &[],
        local: &[Index {
            name: "created_index",
            hash: "registry_key",
            range: "created_sort",
            projection: "ALL",
        }],
        ttl: None,
    },
    // RELEASES.md §6.6.
    TableSpec {
        env: "TPF_DYNAMO_WORKER_TABLE",
        hash: "registry_key",
        range: "registry_sort",
        global: &[],
        local: &[],
        ttl: None,
    },
    // EXECUTION.md §10.5.
    TableSpec {
        env: "TPF_DYNAMO_EXECUTION_TABLE",
        hash: "pk",
        range: "sk",
        global: &[
            Index {
                name: "due-index",
                hash: "dp",
                range: "ds",
                projection: "KEYS_ONLY",
            },
            Index {
                name: "list-index",
                hash: "t",
                range: "cs",
                projection: "KEYS_ONLY",
            },
        ],
        local: &[],
        ttl: Some("ttl"),
    },
    TableSpec {
        env: "TPF_DYNAMO_AWAIT_TABLE",
        hash: "pk",
        range: "sk",
        global: &[
            Index {
                name: "pending-index",
                hash: "t",
                range: "pd",
                projection: "ALL",
            },
            Index {
                name: "settle-index",
                hash: "sp",
                range: "ss",
                projection: "KEYS_ONLY",
            },
        ],
        local: &[],
        ttl: Some("ttl"),
    },
];

/// (hash, range) of a `KeySchema`.
fn key_schema(v: &Value) -> (String, String) {
    let mut hash = None;
    let mut range = None;
    for k in seq(v, "KeySchema") {
        let name = text(k, "AttributeName").to_string();
        match text(k, "KeyType") {
            "HASH" => assert!(hash.replace(name).is_none(), "two HASH keys"),
            "RANGE" => assert!(range.replace(name).is_none(), "two RANGE keys"),
            other => panic!("key type {other}"),
        }
    }
    (hash.expect("a HASH key"), range.expect("a RANGE key"))
}

fn check_indexes(table: &str, props: &Value, key: &str, spec: &[Index]) {
    let actual: Vec<&Value> = props
        .get(key)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let names: BTreeSet<&str> = actual.iter().map(|i| text(i, "IndexName")).collect();
    let wanted: BTreeSet<&str> = spec.iter().map(|i| i.name).collect();
    assert_eq!(names, wanted, "{table}: {key}");
    assert_eq!(actual.len(), spec.len(), "{table}: {key} repeats an index");
    for want in spec {
        let got = actual
            .iter()
            .find(|i| text(i, "IndexName") == want.name)
            .unwrap();
        assert_eq!(
            key_schema(got),
            (want.hash.to_string(), want.range.to_string()),
            "{table}: keys of {}",
            want.name
        );
        assert_eq!(
            text(at(got, "Projection"), "ProjectionType"),
            want.projection,
            "{table}: projection of {}",
            want.name
        );
    }
}

#[test]
fn tables_match_the_spec() {
    let t = Template::load();
    for spec in &TABLES {
        let id = t.table_of_env(spec.env);
        let table = t.resource(&id);
        let props = at(table, "Properties");
        assert_eq!(
            key_schema(props),
            (spec.hash.to_string(), spec.range.to_string()),
            "{id}: primary key"
        );
        check_indexes(&id, props, "GlobalSecondaryIndexes", spec.global);
        check_indexes(&id, props, "LocalSecondaryIndexes", spec.local);

        // Exactly the key attributes are defined, all strings.
        let mut wanted: BTreeSet<&str> = BTreeSet::from([spec.hash, spec.range]);
        for i in spec.global.iter().chain(spec.local) {
            wanted.insert(i.hash);
            wanted.insert(i.range);
        }
        let mut defined: BTreeSet<&str> = BTreeSet::new();
        for a in seq(props, "AttributeDefinitions") {
            assert_eq!(text(a, "AttributeType"), "S", "{id}: keys are strings");
            assert!(
                defined.insert(text(a, "AttributeName")),
                "{id}: attribute defined twice"
            );
        }
        assert_eq!(defined, wanted, "{id}: AttributeDefinitions");

        assert_eq!(
            text(props, "BillingMode"),
            "PAY_PER_REQUEST",
            "{id}: on-demand"
        );
        assert_eq!(
            at(
                at(props, "PointInTimeRecoverySpecification"),
                "PointInTimeRecoveryEnabled"
            )
            .as_bool(),
            Some(true),
            "{id}: point-in-time recovery"
        );
        match spec.ttl {
            Some(attribute) => {
                let ttl = at(props, "TimeToLiveSpecification");
                assert_eq!(text(ttl, "AttributeName"), attribute, "{id}: TTL attribute");
                assert_eq!(
                    at(ttl, "Enabled").as_bool(),
                    Some(true),
                    "{id}: TTL enabled"
                );
            }
            None => assert!(
                props.get("TimeToLiveSpecification").is_none(),
                "{id}: no TTL (records are never expired)"
            ),
        }
    }
}
