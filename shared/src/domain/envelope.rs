//! Payload envelopes and the transition codec (`EXECUTION.md` §4): the
//! three structural operations the coordinator performs — validation
//! (§4.4), ingress relabelling at submit (§4.5) and the resume payload after
//! an await (§4.6) — plus the canonical texts that are hashed (`API.md`
//! §2.1 input hash, §2.5 completion fingerprint). Payloads are never
//! decoded into application types.
//!
//! serde_json (without `arbitrary_precision`) turns `27.50` into a float, so
//! everything that must keep numbers verbatim (Flatten, Compact, Lift) works
//! on the JSON **text** through the small order-preserving reader below;
//! validation, which only checks structure, uses serde_json values.

use serde_json::Value;

use crate::domain::strict_json::{parse_value, StrictJsonError};
use crate::error::{ApiError, ErrorCode};

/// The only encoding the coordinator accepts from clients and produces.
pub const TRANSITION_ENCODING: &str = "application/tpf-transition+json";
/// Type id of the coordinator → worker input snapshot.
pub const SNAPSHOT_TYPE: &str = "org.pipelineframework.orchestrator.ExecutionInputSnapshot";

const NULL_TYPE: &str = "null";
const LIST_TYPE: &str = "java.util.List";
const SET_TYPE: &str = "java.util.Set";
const MAP_TYPE: &str = "java.util.Map";
const STRING_TYPE: &str = "java.lang.String";
const BOOLEAN_TYPE: &str = "java.lang.Boolean";
const LONG_TYPE: &str = "java.lang.Long";
const BIG_INTEGER_TYPE: &str = "java.math.BigInteger";
const DOUBLE_TYPE: &str = "java.lang.Double";

/// §4.4 rule 3: longest accepted type id.
const MAX_TYPE_ID_CHARS: usize = 512;
/// §4.4 rule 8: a container at a deeper level than this fails.
const MAX_CONTAINER_LEVEL: usize = 10;
/// Nesting cap of the text reader. Above the body cap of 127 because the
/// plain JSON made by Flatten stacks container levels (≤ 10) on top of a
/// leaf payload's own nesting (≤ 127); it only keeps recursion bounded.
const MAX_TEXT_DEPTH: usize = 512;
/// Guard of Flatten's recursion through container payload texts (each level
/// at least doubles the text, so real envelopes never come near it).
const MAX_FLATTEN_LEVEL: usize = 64;
/// Largest payload text Lift builds. Every level of a lifted container
/// escapes its items' texts once more, so deeply nested plain JSON would
/// grow exponentially; past this (the 6 MB limit of a worker call) Lift
/// fails and the resume is `AWAIT_RESUME_UNAVAILABLE`.
const MAX_LIFT_TEXT: usize = 6 * 1024 * 1024;

/// Input shapes of a submit (`API.md` §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InputShape {
    Uni,
    Multi,
    Raw,
}

impl InputShape {
    fn as_str(self) -> &'static str {
        match self {
            InputShape::Uni => "UNI",
            InputShape::Multi => "MULTI",
            InputShape::Raw => "RAW",
        }
    }
}

/// §4.4: validates `value` (the member named `path`, e.g. `inputPayload`)
/// as an envelope; 400 `INVALID_PAYLOAD` naming the failing path. Payload
/// texts are parsed with the body rules of `API.md` §1.3 (duplicate member
/// names refused in container texts, nesting ≤ 127), containers nest at most
/// 10 levels.
pub fn validate_envelope(path: &str, value: &Value) -> Result<(), ApiError> {
    validate_at(path, value, 1)
}

/// §4.5: the stored input snapshot — the compact JSON text of
/// `{"shape","payload","items"}` — for a validated `input` of `shape`,
/// relabelled with the first step's `inputTypeId` (`first_input_type`, as
/// found in the contract; trimmed here) when usable. `MULTI` requires a
/// List/Set container or the null envelope, else 400 `INVALID_PAYLOAD`.
/// Envelopes copied unchanged are written as exactly their three members.
pub fn input_snapshot(
    shape: InputShape,
    input: &Value,
    first_input_type: Option<&str>,
) -> Result<String, ApiError> {
    const PATH: &str = "inputPayload";
    let target = first_input_type
        .map(str::trim)
        .filter(|t| is_usable_type(t));
    let (type_id, encoding, payload) = value_parts(input)
        .ok_or_else(|| invalid_payload(format!("{PATH} must be a payload envelope")))?;
    let mut out = String::with_capacity(payload.len() + 256);
    match shape {
        InputShape::Uni => {
            out.push_str(r#"{"shape":"UNI","payload":"#);
            write_item(&mut out, PATH, (type_id, encoding, payload), target)?;
            out.push_str(r#","items":[]}"#);
        }
        InputShape::Raw => {
            out.push_str(r#"{"shape":"UNI","payload":"#);
            write_envelope(&mut out, type_id, encoding, payload);
            out.push_str(r#","items":[]}"#);
        }
        InputShape::Multi => {
            out.push_str(r#"{"shape":"MULTI","payload":null,"items":["#);
            match type_id {
                NULL_TYPE => {}
                LIST_TYPE | SET_TYPE => {
                    let items = container_items(type_id, payload)
                        .map_err(|why| invalid_payload(format!("{PATH}.payload {why}")))?;
                    for (i, item) in items.iter().enumerate() {
                        let item_path = format!("{PATH}.items[{i}]");
                        let parts = json_parts(item).ok_or_else(|| {
                            invalid_payload(format!("{item_path} must be a payload envelope"))
                        })?;
                        if i > 0 {
                            out.push(',');
                        }
                        write_item(&mut out, &item_path, parts, target)?;
                    }
                }
                _ => {
                    return Err(invalid_payload(format!(
                        "{PATH} must be a {LIST_TYPE} or {SET_TYPE} container or the null envelope when inputShape is MULTI"
                    )))
                }
            }
            out.push_str("]}");
        }
    }
    Ok(out)
}

/// Flatten (§4.5) of a validated envelope into plain JSON **text**: numbers
/// copied verbatim (`27.50` stays `27.50`), member order kept, Compact form.
/// Err names what could not be parsed.
pub fn flatten(envelope: &Value) -> Result<String, String> {
    let (type_id, _, payload) =
        value_parts(envelope).ok_or_else(|| "the value is not a payload envelope".to_owned())?;
    let mut out = String::with_capacity(payload.len());
    write_json(&mut out, &flatten_parts(type_id, payload, 1)?);
    Ok(out)
}

/// Compact (§4.5) of JSON text: no white space, members in their order,
/// numbers verbatim, strings re-escaped as RFC 8785 says. Err when `text` is
/// not one JSON value.
pub fn compact(text: &str) -> Result<String, String> {
    let value = parse_text(text)?;
    let mut out = String::with_capacity(text.len());
    write_json(&mut out, &value);
    Ok(out)
}

/// §4.6: the resume envelope from the stored completion response (plain
/// JSON text, `None` = no response) and the interaction's `output_type`.
/// Err (e.g. a blank Map key in Lift) means `AWAIT_RESUME_UNAVAILABLE`.
pub fn resume_envelope(response: Option<&str>, output_type: &str) -> Result<Value, String> {
    // Rule 1 (no stored response at all is the absent value, too).
    let Some(text) = response else {
        return Ok(null_envelope());
    };
    let r = parse_text(text).map_err(|why| format!("the stored response is not JSON: {why}"))?;
    if matches!(r, Json::Null) {
        return Ok(null_envelope());
    }
    match output_type {
        // Rule 2.
        MAP_TYPE | LIST_TYPE | SET_TYPE => {
            let (label, payload) = lift(&r)?;
            let label = if output_type == SET_TYPE && matches!(r, Json::Arr(_)) {
                SET_TYPE
            } else {
                label
            };
            Ok(envelope_value(label, &payload))
        }
        // Rule 3.
        STRING_TYPE => Ok(envelope_value(output_type, &json_text(&r))),
        _ => {
            // Rule 4.
            if let Json::Str(s) = &r {
                let trimmed = s.trim();
                if (trimmed.starts_with('{') || trimmed.starts_with('['))
                    && parse_text(trimmed).is_ok()
                {
                    return Ok(envelope_value(output_type, trimmed));
                }
            }
            // Rule 5.
            Ok(envelope_value(output_type, &json_text(&r)))
        }
    }
}

/// `API.md` §2.1: lowercase hex SHA-256 of the canonical input text
/// `{"inputPayload":{"payload":P,"payloadEncoding":E,"payloadTypeId":T},"inputShape":S}`.
pub fn input_hash(input: &Value, shape: InputShape) -> String {
    hex::encode(sha256(canonical_input(input, shape).as_bytes()))
}

/// `API.md` §2.1: the server-derived key (`SERVER_KEY_ONLY`):
/// base64url (no padding) of SHA-256(tenant ‖ ":" ‖ canonical input).
pub fn server_key(tenant: &str, input: &Value, shape: InputShape) -> String {
    use base64::Engine as _;
    let mut text = String::with_capacity(tenant.len() + 1 + 256);
    text.push_str(tenant);
    text.push(':');
    text.push_str(&canonical_input(input, shape));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(text.as_bytes()))
}

/// `API.md` §2.5: the completion fingerprint of a validated envelope.
pub fn payload_hash(envelope: &Value) -> String {
    let mut text = String::with_capacity(256);
    write_canonical_envelope(&mut text, envelope);
    hex::encode(sha256(text.as_bytes()))
}

/// The null envelope `{"payloadTypeId":"null",…,"payload":"null"}`.
pub fn null_envelope() -> Value {
    serde_json::json!({"payloadTypeId": "null", "payloadEncoding": TRANSITION_ENCODING, "payload": "null"})
}

// ---------------------------------------------------------------------------
// Validation (§4.4)

fn invalid_payload(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidPayload, message)
}

fn is_generic(type_id: &str) -> bool {
    matches!(type_id, MAP_TYPE | LIST_TYPE | SET_TYPE)
}

/// §4.5: a first-step input type that may replace a generic label.
fn is_usable_type(t: &str) -> bool {
    !t.is_empty()
        && !matches!(
            t,
            NULL_TYPE | MAP_TYPE | LIST_TYPE | SET_TYPE | SNAPSHOT_TYPE
        )
}

/// §4.4 rule 3: `null`, or ≤ 512 characters of
/// `^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$`.
fn is_valid_type_id(t: &str) -> bool {
    if t == NULL_TYPE {
        return true;
    }
    // Only ASCII can match, so bytes are characters.
    t.len() <= MAX_TYPE_ID_CHARS
        && t.split('.').all(|segment| {
            let mut bytes = segment.bytes();
            matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b'$')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        })
}

/// Rule 1 for one member: present (not null) and a string.
fn member_str<'a>(
    object: &'a serde_json::Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<&'a str, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Err(invalid_payload(format!("{path}.{name} is required"))),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid_payload(format!("{path}.{name} must be a string"))),
    }
}

/// Describes why a container's payload text failed the body rules, without
/// quoting the text (messages never contain payloads).
fn describe_strict(error: StrictJsonError) -> String {
    match error {
        StrictJsonError::Empty => "is not valid JSON: the text is empty".to_owned(),
        StrictJsonError::NotUtf8 => "is not valid UTF-8".to_owned(),
        StrictJsonError::NotObject => "must be a JSON object".to_owned(),
        StrictJsonError::Invalid(why) if why.contains("appears twice") => {
            "is not valid JSON: a member name appears twice in one object".to_owned()
        }
        StrictJsonError::Invalid(why) => format!("is not valid JSON: {why}"),
    }
}

fn validate_at(path: &str, value: &Value, level: usize) -> Result<(), ApiError> {
    // Rule 1.
    let Value::Object(object) = value else {
        return Err(invalid_payload(format!("{path} must be a JSON object")));
    };
    let type_id = member_str(object, path, "payloadTypeId")?;
    let encoding = member_str(object, path, "payloadEncoding")?;
    let payload = member_str(object, path, "payload")?;
    // Rule 2.
    if encoding != TRANSITION_ENCODING {
        return Err(invalid_payload(format!(
            "{path}.payloadEncoding must be {TRANSITION_ENCODING}"
        )));
    }
    // Rule 3.
    if !is_valid_type_id(type_id) {
        return Err(invalid_payload(format!(
            "{path}.payloadTypeId must be null or a type name of at most {MAX_TYPE_ID_CHARS} characters"
        )));
    }
    // Rule 4.
    if type_id == SNAPSHOT_TYPE {
        return Err(invalid_payload(format!(
            "{path}.payloadTypeId must not be {SNAPSHOT_TYPE}"
        )));
    }
    match type_id {
        // Rule 5.
        NULL_TYPE => Ok(()),
        // Rules 6 and 8.
        LIST_TYPE | SET_TYPE | MAP_TYPE => {
            if level > MAX_CONTAINER_LEVEL {
                return Err(invalid_payload(format!(
                    "{path} nests containers deeper than {MAX_CONTAINER_LEVEL} levels"
                )));
            }
            let document = parse_value(payload.as_bytes())
                .map_err(|e| invalid_payload(format!("{path}.payload {}", describe_strict(e))))?;
            let Value::Object(document) = document else {
                return Err(invalid_payload(format!(
                    "{path}.payload must be a JSON object"
                )));
            };
            match (type_id, document.get("items")) {
                (_, None | Some(Value::Null)) => Ok(()),
                (MAP_TYPE, Some(Value::Object(items))) => {
                    for (key, item) in items {
                        if key.trim().is_empty() {
                            return Err(invalid_payload(format!("{path}.items has a blank key")));
                        }
                        validate_at(&format!("{path}.items.{key}"), item, level + 1)?;
                    }
                    Ok(())
                }
                (MAP_TYPE, Some(_)) => Err(invalid_payload(format!(
                    "{path}.items must be a JSON object"
                ))),
                (_, Some(Value::Array(items))) => {
                    for (i, item) in items.iter().enumerate() {
                        validate_at(&format!("{path}.items[{i}]"), item, level + 1)?;
                    }
                    Ok(())
                }
                (_, Some(_)) => Err(invalid_payload(format!(
                    "{path}.items must be a JSON array"
                ))),
            }
        }
        // Rule 7: one JSON value, nesting capped by serde_json's default
        // recursion limit; repeated member names are not looked for.
        _ => match serde_json::from_str::<Value>(payload) {
            Ok(_) => Ok(()),
            Err(e) => Err(invalid_payload(format!(
                "{path}.payload is not valid JSON: {e}"
            ))),
        },
    }
}

// ---------------------------------------------------------------------------
// Envelope parts and writers

/// The three envelope strings of a serde value, if it is an envelope.
fn value_parts(value: &Value) -> Option<(&str, &str, &str)> {
    let object = value.as_object()?;
    Some((
        object.get("payloadTypeId")?.as_str()?,
        object.get("payloadEncoding")?.as_str()?,
        object.get("payload")?.as_str()?,
    ))
}

/// The three envelope strings of an object read by [`parse_text`].
fn json_parts(value: &Json) -> Option<(&str, &str, &str)> {
    let Json::Obj(members) = value else {
        return None;
    };
    let get = |name: &str| match members.iter().find(|(k, _)| k == name) {
        Some((_, Json::Str(s))) => Some(s.as_str()),
        _ => None,
    };
    Some((
        get("payloadTypeId")?,
        get("payloadEncoding")?,
        get("payload")?,
    ))
}

/// Writes `{"payloadTypeId":T,"payloadEncoding":E,"payload":P}`.
fn write_envelope(out: &mut String, type_id: &str, encoding: &str, payload: &str) {
    out.push_str(r#"{"payloadTypeId":"#);
    write_string(out, type_id);
    out.push_str(r#","payloadEncoding":"#);
    write_string(out, encoding);
    out.push_str(r#","payload":"#);
    write_string(out, payload);
    out.push('}');
}

/// The resume envelope as a serde value, members in envelope order.
fn envelope_value(type_id: &str, payload: &str) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("payloadTypeId".into(), Value::String(type_id.to_owned()));
    object.insert(
        "payloadEncoding".into(),
        Value::String(TRANSITION_ENCODING.to_owned()),
    );
    object.insert("payload".into(), Value::String(payload.to_owned()));
    Value::Object(object)
}

/// One snapshot item: Relabel(E, T) when `target` is usable and E generic,
/// else E's three members unchanged.
fn write_item(
    out: &mut String,
    path: &str,
    (type_id, encoding, payload): (&str, &str, &str),
    target: Option<&str>,
) -> Result<(), ApiError> {
    match target {
        Some(target) if is_generic(type_id) => {
            let flat = flatten_parts(type_id, payload, 1)
                .map_err(|why| invalid_payload(format!("{path} cannot be flattened: {why}")))?;
            write_envelope(out, target, TRANSITION_ENCODING, &json_text(&flat));
        }
        _ => write_envelope(out, type_id, encoding, payload),
    }
    Ok(())
}

/// `{"payload":P,"payloadEncoding":E,"payloadTypeId":T}` (`API.md` §2.1/§2.5).
fn write_canonical_envelope(out: &mut String, envelope: &Value) {
    let member = |name: &str| envelope.get(name).and_then(Value::as_str).unwrap_or("");
    out.push_str(r#"{"payload":"#);
    write_string(out, member("payload"));
    out.push_str(r#","payloadEncoding":"#);
    write_string(out, member("payloadEncoding"));
    out.push_str(r#","payloadTypeId":"#);
    write_string(out, member("payloadTypeId"));
    out.push('}');
}

fn canonical_input(input: &Value, shape: InputShape) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"inputPayload":"#);
    write_canonical_envelope(&mut out, input);
    out.push_str(r#","inputShape":""#);
    out.push_str(shape.as_str());
    out.push_str("\"}");
    out
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

// ---------------------------------------------------------------------------
// Flatten (§4.5) and Lift (§4.6)

/// The `items` of a List/Set container's payload text (absent/null = none).
fn container_items(type_id: &str, payload: &str) -> Result<Vec<Json>, String> {
    match take_items(type_id, payload)? {
        None => Ok(Vec::new()),
        Some(Json::Arr(items)) => Ok(items),
        Some(_) => Err("items must be a JSON array".to_owned()),
    }
}

/// The `items` member of a container's payload text: None when absent or null.
fn take_items(type_id: &str, payload: &str) -> Result<Option<Json>, String> {
    let Json::Obj(members) = parse_text(payload)? else {
        return Err(format!("of a {type_id} must be a JSON object"));
    };
    Ok(members
        .into_iter()
        .find(|(k, _)| k == "items")
        .map(|(_, v)| v)
        .filter(|v| !matches!(v, Json::Null)))
}

/// Flatten(E) for E's type id and payload text.
fn flatten_parts(type_id: &str, payload: &str, level: usize) -> Result<Json, String> {
    if level > MAX_FLATTEN_LEVEL {
        return Err(format!(
            "containers nest deeper than {MAX_FLATTEN_LEVEL} levels"
        ));
    }
    let flatten_item = |item: &Json| -> Result<Json, String> {
        let (t, _, p) =
            json_parts(item).ok_or_else(|| "an item is not a payload envelope".to_owned())?;
        flatten_parts(t, p, level + 1)
    };
    match type_id {
        NULL_TYPE => Ok(Json::Null),
        LIST_TYPE | SET_TYPE => container_items(type_id, payload)?
            .iter()
            .map(flatten_item)
            .collect::<Result<Vec<_>, _>>()
            .map(Json::Arr),
        MAP_TYPE => match take_items(type_id, payload)? {
            None => Ok(Json::Obj(Vec::new())),
            Some(Json::Obj(items)) => items
                .into_iter()
                .map(|(k, v)| flatten_item(&v).map(|v| (k, v)))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Obj),
            Some(_) => Err("items must be a JSON object".to_owned()),
        },
        _ => parse_text(payload),
    }
}

/// Lift(v) (§4.6): the label and payload text of the envelope for `v`.
fn lift(value: &Json) -> Result<(&'static str, String), String> {
    Ok(match value {
        Json::Null => (NULL_TYPE, "null".to_owned()),
        Json::Bool(b) => (BOOLEAN_TYPE, b.to_string()),
        Json::Str(_) => (STRING_TYPE, json_text(value)),
        Json::Num(literal) => {
            let label = if literal.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                DOUBLE_TYPE
            } else if literal.parse::<i64>().is_ok() {
                LONG_TYPE
            } else {
                BIG_INTEGER_TYPE
            };
            (label, literal.clone())
        }
        Json::Arr(items) => {
            let mut out = String::from(r#"{"items":["#);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let (label, payload) = lift(item)?;
                write_envelope(&mut out, label, TRANSITION_ENCODING, &payload);
                check_lift_size(&out)?;
            }
            out.push_str("]}");
            (LIST_TYPE, out)
        }
        Json::Obj(members) => {
            let mut out = String::from(r#"{"items":{"#);
            for (i, (key, item)) in members.iter().enumerate() {
                if key.trim().is_empty() {
                    return Err("a map key of the response is blank".to_owned());
                }
                if i > 0 {
                    out.push(',');
                }
                write_string(&mut out, key);
                out.push(':');
                let (label, payload) = lift(item)?;
                write_envelope(&mut out, label, TRANSITION_ENCODING, &payload);
                check_lift_size(&out)?;
            }
            out.push_str("}}");
            (MAP_TYPE, out)
        }
    })
}

fn check_lift_size(text: &str) -> Result<(), String> {
    if text.len() > MAX_LIFT_TEXT {
        Err(format!(
            "the lifted response exceeds {MAX_LIFT_TEXT} bytes (nested too deeply)"
        ))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Order-preserving JSON text reader and the Compact writer

/// A JSON value as text-level data: numbers keep their literal, objects keep
/// member order (and any repeated names).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// Reads exactly one RFC 8259 JSON value (white space around allowed).
fn parse_text(text: &str) -> Result<Json, String> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    reader.skip_ws();
    if reader.pos == reader.bytes.len() {
        return Err("the text is empty".to_owned());
    }
    let value = reader.value(0)?;
    reader.skip_ws();
    if reader.pos != reader.bytes.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(value)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// A value; `depth` is the number of enclosing arrays and objects.
    fn value(&mut self, depth: usize) -> Result<Json, String> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a JSON value")),
            None => Err(self.error("unexpected end of text")),
        }
    }

    fn check_depth(&self, depth: usize) -> Result<(), String> {
        if depth > MAX_TEXT_DEPTH {
            Err(self.error(&format!("nesting deeper than {MAX_TEXT_DEPTH} levels")))
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.check_depth(depth)?;
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Obj(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a member name"));
            }
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':', "expected `:`")?;
            self.skip_ws();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Obj(members));
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, String> {
        self.check_depth(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Arr(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Arr(items));
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept verbatim.
    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'0'..=b'9')) {
            // A leading zero followed by more digits.
            return Err(self.error("invalid number"));
        }
        Ok(Json::Num(self.text[start..self.pos].to_owned()))
    }

    /// A string starting at the opening quote, escapes decoded.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run = self.pos;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.pos += 1;
            }
            // The run stops at an ASCII byte or the end: a char boundary.
            out.push_str(&self.text[run..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), String> {
        let Some(b) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        self.pos += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(self.error("lone surrogate in a \\u escape"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("lone surrogate in a \\u escape"));
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.error("lone surrogate in a \\u escape"));
                    }
                    _ => unit,
                };
                char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))?
            }
            _ => return Err(self.error("invalid escape")),
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let hex = self
            .bytes
            .get(self.pos..self.pos + 4)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        // Four ASCII hex digits: both conversions succeed.
        let unit = u32::from_str_radix(std::str::from_utf8(hex).unwrap_or("0"), 16).unwrap_or(0);
        self.pos += 4;
        Ok(unit)
    }
}

/// Compact text of a value.
fn json_text(value: &Json) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

/// Compact (§4.5): no white space, member order kept, numbers verbatim.
fn write_json(out: &mut String, value: &Json) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Num(literal) => out.push_str(literal),
        Json::Str(s) => write_string(out, s),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Json::Obj(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

/// A JSON string escaped as RFC 8785 says: only `"`, `\` and U+0000–U+001F,
/// the latter as `\b \f \n \r \t` or `\u00xx` (lowercase); the rest raw.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escaped.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escaped);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENC: &str = TRANSITION_ENCODING;

    fn env(type_id: &str, payload: &str) -> Value {
        json!({"payloadTypeId": type_id, "payloadEncoding": ENC, "payload": payload})
    }

    fn env_text(type_id: &str, payload: &str) -> String {
        let mut out = String::new();
        write_envelope(&mut out, type_id, ENC, payload);
        out
    }

    fn list(type_id: &str, items: &[Value]) -> Value {
        let texts: Vec<String> = items.iter().map(|v| v.to_string()).collect();
        env(type_id, &format!("{{\"items\":[{}]}}", texts.join(",")))
    }

    fn map(items: &[(&str, Value)]) -> Value {
        let texts: Vec<String> = items
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::String((*k).into()), v))
            .collect();
        env(MAP_TYPE, &format!("{{\"items\":{{{}}}}}", texts.join(",")))
    }

    fn message(result: Result<(), ApiError>) -> String {
        let error = result.expect_err("expected INVALID_PAYLOAD");
        assert_eq!(error.code, ErrorCode::InvalidPayload);
        error.message
    }

    /// §4.3 examples as received in a body.
    fn exact_examples() -> Vec<Value> {
        [
            r#"{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"x\""}"#,
            r#"{"payloadTypeId":"java.lang.Long","payloadEncoding":"application/tpf-transition+json","payload":"42"}"#,
            r#"{"payloadTypeId":"null","payloadEncoding":"application/tpf-transition+json","payload":"null"}"#,
            r#"{"payloadTypeId":"java.util.Map","payloadEncoding":"application/tpf-transition+json","payload":"{\"items\":{\"value\":{\"payloadTypeId\":\"java.lang.Long\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"42\"}}}"}"#,
            r#"{"payloadTypeId":"java.util.List","payloadEncoding":"application/tpf-transition+json","payload":"{\"items\":[{\"payloadTypeId\":\"java.lang.String\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"\\\"a\\\"\"},{\"payloadTypeId\":\"java.lang.String\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"\\\"b\\\"\"}]}"}"#,
        ]
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
    }

    const SECTION_4_5_INPUT: &str = r#"{"payloadTypeId":"java.util.Map","payloadEncoding":"application/tpf-transition+json","payload":"{\"items\":{\"value\":{\"payloadTypeId\":\"java.lang.Long\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"42\"},\"amount\":{\"payloadTypeId\":\"java.math.BigDecimal\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"27.50\"}}}"}"#;

    const SECTION_2_5_BODY: &str = r#"{
  "interactionId": "c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
  "idempotencyKey": "complete-c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
  "responsePayload": {
    "payloadTypeId": "java.util.Map",
    "payloadEncoding": "application/tpf-transition+json",
    "payload": "{\"items\":{\"approved\":{\"payloadTypeId\":\"java.lang.Boolean\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"true\"},\"note\":{\"payloadTypeId\":\"java.lang.String\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"\\\"Looks good\\\"\"},\"score\":{\"payloadTypeId\":\"java.lang.Long\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"7\"}}}"
  },
  "actor": "kitchen-tablet-3"
}"#;

    fn hash_example_input() -> Value {
        env(
            "org.pipelineframework.restaurantapproval.common.dto.PlaceRestaurantOrderRequestDto",
            r#"{"requestId":"5b0e2c1a-8f3d-4e6b-a9c7-1d2e3f4a5b6c","customerName":"Ada Lovelace"}"#,
        )
    }

    // ----- hashes (API.md §2.1, §2.5)

    #[test]
    fn canonical_input_matches_the_worked_example() {
        assert_eq!(
            canonical_input(&hash_example_input(), InputShape::Uni),
            r#"{"inputPayload":{"payload":"{\"requestId\":\"5b0e2c1a-8f3d-4e6b-a9c7-1d2e3f4a5b6c\",\"customerName\":\"Ada Lovelace\"}","payloadEncoding":"application/tpf-transition+json","payloadTypeId":"org.pipelineframework.restaurantapproval.common.dto.PlaceRestaurantOrderRequestDto"},"inputShape":"UNI"}"#
        );
    }

    #[test]
    fn input_hash_matches_the_worked_example() {
        assert_eq!(
            input_hash(&hash_example_input(), InputShape::Uni),
            "d30977c66b9cdb3afdde5a4cc89116abeff4289f2437f2f4e235a2210c3f356e"
        );
    }

    #[test]
    fn server_key_matches_the_worked_example() {
        assert_eq!(
            server_key("acme", &hash_example_input(), InputShape::Uni),
            "xCA0n6aTk36Gb16oFIkhKvUDsaTu8FHX_hkld38oOYE"
        );
    }

    #[test]
    fn input_hash_depends_on_shape_payload_and_tenant() {
        let input = hash_example_input();
        let uni = input_hash(&input, InputShape::Uni);
        assert_ne!(uni, input_hash(&input, InputShape::Raw));
        assert_ne!(uni, input_hash(&input, InputShape::Multi));
        assert_ne!(
            uni,
            input_hash(&env("java.lang.String", "\"y\""), InputShape::Uni)
        );
        assert_ne!(
            server_key("acme", &input, InputShape::Uni),
            server_key("other", &input, InputShape::Uni)
        );
        // Unknown members do not count.
        let mut extra = input.clone();
        extra["note"] = json!("ignored");
        assert_eq!(uni, input_hash(&extra, InputShape::Uni));
    }

    #[test]
    fn payload_hash_matches_the_completion_example() {
        let body: Value = serde_json::from_str(SECTION_2_5_BODY).unwrap();
        let envelope = &body["responsePayload"];
        validate_envelope("responsePayload", envelope).unwrap();
        assert_eq!(
            payload_hash(envelope),
            "5aced512b3d8ced3012544332dbac02f682e4d72745ee864a7552f2afd84f792"
        );
    }

    #[test]
    fn canonical_strings_use_rfc8785_escaping() {
        let mut out = String::new();
        write_canonical_envelope(
            &mut out,
            &env("t", "\u{0}\u{8}\u{c}\n\r\t\u{1f}\"\\/\u{7f}é\u{2028}😀"),
        );
        assert_eq!(
            out,
            "{\"payload\":\"\\u0000\\b\\f\\n\\r\\t\\u001f\\\"\\\\/\u{7f}é\u{2028}😀\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payloadTypeId\":\"t\"}"
        );
    }

    // ----- Compact

    #[test]
    fn compact_drops_white_space_and_keeps_order_and_numbers() {
        assert_eq!(
            compact(" {\n \"b\" : [ 1 , 27.50 , -0 , 1E+2 , 12345678901234567890123 , 0.1e-7 ] ,\t\"a\" : { } , \"c\":[ ] , \"d\" : null, \"e\": true ,\"f\":false }\r\n").unwrap(),
            r#"{"b":[1,27.50,-0,1E+2,12345678901234567890123,0.1e-7],"a":{},"c":[],"d":null,"e":true,"f":false}"#
        );
        assert_eq!(compact("27.50").unwrap(), "27.50");
        assert_eq!(compact("1e400").unwrap(), "1e400");
    }

    #[test]
    fn compact_keeps_repeated_member_names() {
        assert_eq!(compact(r#"{"a":1, "a":2}"#).unwrap(), r#"{"a":1,"a":2}"#);
    }

    #[test]
    fn compact_reescapes_strings_as_rfc8785() {
        assert_eq!(
            compact(r#""\u00e9\/\u001F\u007f\b\f\n\r\t\"\\\u0000\ud83d\ude00\u2028""#).unwrap(),
            "\"é/\\u001f\u{7f}\\b\\f\\n\\r\\t\\\"\\\\\\u0000😀\u{2028}\""
        );
        assert_eq!(compact("\"\\u000B\"").unwrap(), "\"\\u000b\"");
        assert_eq!(compact("\"raw é 😀\"").unwrap(), "\"raw é 😀\"");
        assert_eq!(compact(r#"{"k\u0041":"\u0041"}"#).unwrap(), r#"{"kA":"A"}"#);
    }

    #[test]
    fn compact_refuses_anything_but_one_json_value() {
        for bad in [
            "",
            "   ",
            "1 2",
            "{} x",
            "[1,]",
            "{\"a\":1,}",
            "{'a':1}",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "NaN",
            "\"abc",
            "\"a\u{1}b\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\ud800\\u0041\"",
            "\"\\udc00\"",
            "[1}",
            "{\"a\" 1}",
            "{1:2}",
            "/* c */ 1",
        ] {
            assert!(compact(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn compact_caps_nesting() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_TEXT_DEPTH),
            "]".repeat(MAX_TEXT_DEPTH)
        );
        assert_eq!(compact(&ok).unwrap(), ok);
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_TEXT_DEPTH + 1),
            "]".repeat(MAX_TEXT_DEPTH + 1)
        );
        assert!(compact(&deep).is_err());
    }

    #[test]
    fn compact_is_idempotent_on_serde_output() {
        let v = json!({"z": "é\u{1}", "a": [1, 2.5, {"x": null}]});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let once = compact(&text).unwrap();
        assert_eq!(once, r#"{"z":"é\u0001","a":[1,2.5,{"x":null}]}"#);
        assert_eq!(compact(&once).unwrap(), once);
    }

    // ----- Flatten

    #[test]
    fn flatten_of_the_section_4_5_example_keeps_numbers_verbatim() {
        let input: Value = serde_json::from_str(SECTION_4_5_INPUT).unwrap();
        assert_eq!(flatten(&input).unwrap(), r#"{"value":42,"amount":27.50}"#);
    }

    #[test]
    fn flatten_of_leaves_null_and_containers() {
        assert_eq!(flatten(&null_envelope()).unwrap(), "null");
        assert_eq!(flatten(&env(NULL_TYPE, "anything")).unwrap(), "null");
        assert_eq!(
            flatten(&env("java.lang.String", " \"x\" ")).unwrap(),
            "\"x\""
        );
        assert_eq!(
            flatten(&env("com.acme.Order", "{ \"b\" : 1.0 , \"a\" : [ ] }")).unwrap(),
            r#"{"b":1.0,"a":[]}"#
        );
        let examples = exact_examples();
        assert_eq!(flatten(&examples[3]).unwrap(), r#"{"value":42}"#);
        assert_eq!(flatten(&examples[4]).unwrap(), r#"["a","b"]"#);
        let nested = map(&[
            (
                "list",
                list(
                    SET_TYPE,
                    &[env("java.lang.Double", "1.50"), null_envelope()],
                ),
            ),
            ("empty", env(LIST_TYPE, r#"{"items":null}"#)),
            ("absent", env(MAP_TYPE, r#"{"other":1}"#)),
        ]);
        assert_eq!(
            flatten(&nested).unwrap(),
            r#"{"list":[1.50,null],"empty":[],"absent":{}}"#
        );
    }

    #[test]
    fn flatten_reports_unparsable_text() {
        assert!(flatten(&env("java.lang.Long", "4 2")).is_err());
        assert!(flatten(&env(LIST_TYPE, "[]")).is_err());
        assert!(flatten(&env(LIST_TYPE, r#"{"items":[1]}"#)).is_err());
        assert!(flatten(&env(MAP_TYPE, r#"{"items":[]}"#)).is_err());
        assert!(flatten(&json!({"payloadTypeId": "x"})).is_err());
    }

    // ----- validation (§4.4)

    #[test]
    fn validate_accepts_the_exact_examples() {
        for example in exact_examples() {
            validate_envelope("inputPayload", &example).unwrap();
        }
        validate_envelope(
            "inputPayload",
            &serde_json::from_str(SECTION_4_5_INPUT).unwrap(),
        )
        .unwrap();
        // Unknown members are ignored; the null type's payload is not parsed.
        let mut extra = env(NULL_TYPE, "{{ not json");
        extra["extra"] = json!([1]);
        validate_envelope("inputPayload", &extra).unwrap();
        // items absent or null, and containers with empty items.
        for payload in [
            r#"{}"#,
            r#"{"items":null}"#,
            r#"{"items":[]}"#,
            r#"{"x":1,"items":[]}"#,
        ] {
            validate_envelope("p", &env(LIST_TYPE, payload)).unwrap();
            validate_envelope("p", &env(SET_TYPE, payload)).unwrap();
        }
        validate_envelope("p", &env(MAP_TYPE, r#"{"items":{}}"#)).unwrap();
        validate_envelope("p", &env(MAP_TYPE, r#"{}"#)).unwrap();
    }

    #[test]
    fn validate_refuses_a_value_that_is_not_an_object() {
        for v in [json!("x"), json!(1), json!(true), json!([1])] {
            assert_eq!(
                message(validate_envelope("inputPayload", &v)),
                "inputPayload must be a JSON object"
            );
        }
    }

    #[test]
    fn validate_rule_1_members_present_and_strings() {
        let v = json!({"payloadEncoding": ENC, "payload": "1"});
        assert_eq!(
            message(validate_envelope("inputPayload", &v)),
            "inputPayload.payloadTypeId is required"
        );
        let v = json!({"payloadTypeId": "a", "payloadEncoding": null, "payload": "1"});
        assert_eq!(
            message(validate_envelope("inputPayload", &v)),
            "inputPayload.payloadEncoding is required"
        );
        let v = json!({"payloadTypeId": "a", "payloadEncoding": ENC, "payload": 1});
        assert_eq!(
            message(validate_envelope("responsePayload", &v)),
            "responsePayload.payload must be a string"
        );
    }

    #[test]
    fn validate_rule_2_encoding_names_the_nested_path() {
        let bad = json!({"payloadTypeId": "java.lang.String", "payloadEncoding": "application/tpf-transition-envelope+json", "payload": "\"c\""});
        let input = list(
            LIST_TYPE,
            &[
                env("java.lang.String", "\"a\""),
                env("java.lang.String", "\"b\""),
                bad.clone(),
            ],
        );
        assert_eq!(
            message(validate_envelope("inputPayload", &input)),
            "inputPayload.items[2].payloadEncoding must be application/tpf-transition+json"
        );
        let input = map(&[("value", bad)]);
        assert_eq!(
            message(validate_envelope("inputPayload", &input)),
            "inputPayload.items.value.payloadEncoding must be application/tpf-transition+json"
        );
    }

    #[test]
    fn validate_rule_3_type_id_syntax_and_length() {
        for good in ["null", "a", "$", "_x.$y1", "java.lang.String", "A.b.C_9"] {
            validate_envelope("p", &env(good, "1")).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let max = format!("a{}", ".a".repeat((MAX_TYPE_ID_CHARS - 1) / 2));
        assert_eq!(max.len(), MAX_TYPE_ID_CHARS - 1);
        validate_envelope("p", &env(&format!("{max}b"), "1")).unwrap();
        assert!(validate_envelope("p", &env(&format!("{max}bc"), "1")).is_err());
        for bad in [
            "", " a", "a ", "1a", "a..b", ".a", "a.", "a-b", "a.1b", "é", "a/b", "Null\n",
        ] {
            assert_eq!(
                message(validate_envelope("p", &env(bad, "1"))),
                "p.payloadTypeId must be null or a type name of at most 512 characters",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn validate_rule_4_refuses_the_snapshot_type() {
        assert_eq!(
            message(validate_envelope("inputPayload", &env(SNAPSHOT_TYPE, r#"{"shape":"UNI","payload":null,"items":[]}"#))),
            "inputPayload.payloadTypeId must not be org.pipelineframework.orchestrator.ExecutionInputSnapshot"
        );
    }

    #[test]
    fn validate_rule_6_container_payloads() {
        let msg = |v: Value| message(validate_envelope("p", &v));
        assert!(msg(env(LIST_TYPE, "not json")).starts_with("p.payload is not valid JSON"));
        assert!(msg(env(LIST_TYPE, "")).starts_with("p.payload is not valid JSON"));
        assert_eq!(msg(env(LIST_TYPE, "[]")), "p.payload must be a JSON object");
        assert_eq!(
            msg(env(SET_TYPE, r#"{"items":{}}"#)),
            "p.items must be a JSON array"
        );
        assert_eq!(
            msg(env(MAP_TYPE, r#"{"items":[]}"#)),
            "p.items must be a JSON object"
        );
        assert_eq!(
            msg(env(LIST_TYPE, r#"{"items":[1]}"#)),
            "p.items[0] must be a JSON object"
        );
        assert_eq!(
            msg(env(
                MAP_TYPE,
                &format!(r#"{{"items":{{" ":{}}}}}"#, null_envelope())
            )),
            "p.items has a blank key"
        );
        assert_eq!(
            msg(list(
                LIST_TYPE,
                &[json!({"payloadTypeId": "a", "payloadEncoding": ENC})]
            )),
            "p.items[0].payload is required"
        );
        assert_eq!(
            msg(map(&[("k", env("java.lang.Long", "4 2"))]))
                .split(':')
                .next()
                .unwrap(),
            "p.items.k.payload is not valid JSON"
        );
    }

    #[test]
    fn validate_rule_6_refuses_repeated_member_names_in_container_texts() {
        let dup_payload = r#"{"items":[],"items":[]}"#;
        let m = message(validate_envelope("p", &env(LIST_TYPE, dup_payload)));
        assert!(m.starts_with("p.payload is not valid JSON"), "{m}");
        assert!(
            m.contains("appears twice") && !m.contains("\"items\""),
            "{m}"
        );
        let dup_key = format!(r#"{{"items":{{"a":{0},"a":{0}}}}}"#, null_envelope());
        assert!(validate_envelope("p", &env(MAP_TYPE, &dup_key)).is_err());
        let dup_envelope = r#"{"items":[{"payloadTypeId":"null","payloadTypeId":"null","payloadEncoding":"application/tpf-transition+json","payload":"null"}]}"#;
        assert!(validate_envelope("p", &env(LIST_TYPE, dup_envelope)).is_err());
        // The text of any other type is opaque.
        validate_envelope("p", &env("com.acme.Order", r#"{"a":1,"a":2}"#)).unwrap();
        validate_envelope(
            "p",
            &list(LIST_TYPE, &[env("com.acme.Order", r#"{"a":1,"a":2}"#)]),
        )
        .unwrap();
    }

    #[test]
    fn validate_rule_7_leaf_payload_is_one_json_value() {
        for good in [
            "1",
            " 27.50 ",
            "\"x\"",
            "null",
            "[1,{\"a\":[]}]",
            "-0",
            "12345678901234567890123",
        ] {
            validate_envelope("p", &env("com.acme.X", good))
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in ["", "  ", "1 2", "{", "x", "'a'", "\"\\ud800\""] {
            let m = message(validate_envelope("p", &env("java.lang.String", bad)));
            assert!(m.starts_with("p.payload is not valid JSON"), "{bad:?}: {m}");
        }
    }

    #[test]
    fn validate_caps_payload_text_nesting_at_127_levels() {
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        validate_envelope("p", &env("com.acme.X", &nested(127))).unwrap();
        assert!(validate_envelope("p", &env("com.acme.X", &nested(128))).is_err());
        let container = |levels: usize| format!(r#"{{"items":[],"x":{}}}"#, nested(levels - 1));
        validate_envelope("p", &env(LIST_TYPE, &container(127))).unwrap();
        assert!(validate_envelope("p", &env(LIST_TYPE, &container(128))).is_err());
    }

    /// A List nested so that its innermost container is at `levels`.
    fn nested_lists(levels: usize) -> Value {
        let mut v = env(LIST_TYPE, r#"{"items":[]}"#);
        for _ in 1..levels {
            v = list(LIST_TYPE, &[v]);
        }
        v
    }

    #[test]
    fn validate_rule_8_container_nesting() {
        validate_envelope("p", &nested_lists(10)).unwrap();
        let m = message(validate_envelope("p", &nested_lists(11)));
        assert_eq!(
            m,
            format!(
                "p{} nests containers deeper than 10 levels",
                ".items[0]".repeat(10)
            )
        );
        // A leaf at level 11 is fine.
        let mut v = env("java.lang.Long", "1");
        for _ in 0..10 {
            v = list(LIST_TYPE, &[v]);
        }
        validate_envelope("p", &v).unwrap();
        // Maps count as containers too.
        let mut v = env(MAP_TYPE, "{}");
        for _ in 0..10 {
            v = map(&[("k", v)]);
        }
        assert!(validate_envelope("p", &v).is_err());
    }

    // ----- input snapshot (§4.5)

    #[test]
    fn sub_10_uni_map_is_relabelled_byte_for_byte() {
        let input: Value = serde_json::from_str(SECTION_4_5_INPUT).unwrap();
        validate_envelope("inputPayload", &input).unwrap();
        assert_eq!(
            input_snapshot(
                InputShape::Uni,
                &input,
                Some("org.pipelineframework.example.TestIngress")
            )
            .unwrap(),
            r#"{"shape":"UNI","payload":{"payloadTypeId":"org.pipelineframework.example.TestIngress","payloadEncoding":"application/tpf-transition+json","payload":"{\"value\":42,\"amount\":27.50}"},"items":[]}"#
        );
        // The map {value:42} of §4.3, with a trimmed inputTypeId.
        assert_eq!(
            input_snapshot(
                InputShape::Uni,
                &exact_examples()[3],
                Some("  TestIngress\t")
            )
            .unwrap(),
            r#"{"shape":"UNI","payload":{"payloadTypeId":"TestIngress","payloadEncoding":"application/tpf-transition+json","payload":"{\"value\":42}"},"items":[]}"#
        );
    }

    #[test]
    fn sub_11_explicit_concrete_type_stays_unchanged() {
        let input = env("java.lang.String", "\"42\"");
        assert_eq!(
            input_snapshot(InputShape::Uni, &input, Some("java.lang.Integer")).unwrap(),
            r#"{"shape":"UNI","payload":{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"42\""},"items":[]}"#
        );
    }

    #[test]
    fn sub_12_uni_list_without_usable_type_is_one_item_unchanged() {
        let input = exact_examples()[4].clone();
        let expected = format!(
            r#"{{"shape":"UNI","payload":{},"items":[]}}"#,
            env_text(LIST_TYPE, input["payload"].as_str().unwrap())
        );
        for t in [
            None,
            Some(""),
            Some("   "),
            Some("null"),
            Some(" java.util.Map "),
            Some(LIST_TYPE),
            Some(SET_TYPE),
            Some(SNAPSHOT_TYPE),
        ] {
            assert_eq!(
                input_snapshot(InputShape::Uni, &input, t).unwrap(),
                expected,
                "{t:?}"
            );
        }
        // With a usable type the list is flattened and relabelled.
        assert_eq!(
            input_snapshot(InputShape::Uni, &input, Some("com.acme.Names")).unwrap(),
            r#"{"shape":"UNI","payload":{"payloadTypeId":"com.acme.Names","payloadEncoding":"application/tpf-transition+json","payload":"[\"a\",\"b\"]"},"items":[]}"#
        );
    }

    #[test]
    fn sub_13_multi_list_of_two_strings() {
        let input = list(
            LIST_TYPE,
            &[
                env("java.lang.String", "\"x\""),
                env("java.lang.String", "\"y\""),
            ],
        );
        validate_envelope("inputPayload", &input).unwrap();
        let expected = r#"{"shape":"MULTI","payload":null,"items":[{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"x\""},{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"y\""}]}"#;
        assert_eq!(
            input_snapshot(InputShape::Multi, &input, None).unwrap(),
            expected
        );
        assert_eq!(
            input_snapshot(InputShape::Multi, &input, Some("com.acme.X")).unwrap(),
            expected
        );
        let set = list(
            SET_TYPE,
            &[
                env("java.lang.String", "\"x\""),
                env("java.lang.String", "\"y\""),
            ],
        );
        assert_eq!(
            input_snapshot(InputShape::Multi, &set, None).unwrap(),
            expected
        );
    }

    #[test]
    fn sub_13_multi_refuses_non_list_payloads() {
        for input in [
            env("java.lang.String", "\"x\""),
            exact_examples()[3].clone(),
            env("com.acme.X", "[1,2]"),
        ] {
            let e = input_snapshot(InputShape::Multi, &input, Some("com.acme.X")).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidPayload);
            assert_eq!(
                e.message,
                "inputPayload must be a java.util.List or java.util.Set container or the null envelope when inputShape is MULTI"
            );
        }
    }

    #[test]
    fn multi_null_envelope_and_empty_containers_have_no_items() {
        let empty = r#"{"shape":"MULTI","payload":null,"items":[]}"#;
        assert_eq!(
            input_snapshot(InputShape::Multi, &null_envelope(), None).unwrap(),
            empty
        );
        for payload in ["{}", r#"{"items":null}"#, r#"{"items":[]}"#] {
            assert_eq!(
                input_snapshot(InputShape::Multi, &env(LIST_TYPE, payload), None).unwrap(),
                empty
            );
        }
    }

    #[test]
    fn multi_relabels_generic_items_and_drops_unknown_members() {
        let mut with_extra = env("java.lang.Long", "7");
        with_extra["extra"] = json!(true);
        let input = list(
            LIST_TYPE,
            &[
                exact_examples()[3].clone(),
                with_extra,
                exact_examples()[4].clone(),
            ],
        );
        let expected = format!(
            r#"{{"shape":"MULTI","payload":null,"items":[{},{},{}]}}"#,
            env_text("com.acme.In", r#"{"value":42}"#),
            env_text("java.lang.Long", "7"),
            env_text("com.acme.In", r#"["a","b"]"#),
        );
        assert_eq!(
            input_snapshot(InputShape::Multi, &input, Some("com.acme.In")).unwrap(),
            expected
        );
        let unchanged = format!(
            r#"{{"shape":"MULTI","payload":null,"items":[{},{},{}]}}"#,
            exact_examples()[3],
            env_text("java.lang.Long", "7"),
            exact_examples()[4],
        );
        assert_eq!(
            input_snapshot(InputShape::Multi, &input, Some("null")).unwrap(),
            unchanged
        );
    }

    #[test]
    fn sub_14_raw_is_stored_as_uni_without_relabelling() {
        let input: Value = serde_json::from_str(SECTION_4_5_INPUT).unwrap();
        let mut with_extra = input.clone();
        with_extra["extra"] = json!(1);
        assert_eq!(
            input_snapshot(
                InputShape::Raw,
                &with_extra,
                Some("org.pipelineframework.example.TestIngress")
            )
            .unwrap(),
            format!(r#"{{"shape":"UNI","payload":{SECTION_4_5_INPUT},"items":[]}}"#)
        );
    }

    #[test]
    fn uni_copies_are_exactly_three_members_with_rfc8785_strings() {
        let mut input = env("com.acme.X", "{\"s\":\"é\\u0001/\"}\n");
        input["zzz"] = json!(1);
        assert_eq!(
            input_snapshot(InputShape::Uni, &input, Some("com.acme.Y")).unwrap(),
            "{\"shape\":\"UNI\",\"payload\":{\"payloadTypeId\":\"com.acme.X\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"{\\\"s\\\":\\\"é\\\\u0001/\\\"}\\n\"},\"items\":[]}"
        );
        // The snapshot is JSON whose payload round-trips.
        let snapshot: Value =
            serde_json::from_str(&input_snapshot(InputShape::Uni, &input, None).unwrap()).unwrap();
        assert_eq!(snapshot["payload"]["payload"], input["payload"]);
    }

    #[test]
    fn relabelled_strings_are_rfc8785_escaped() {
        let input = list(LIST_TYPE, &[env("java.lang.String", r#""\u00e9\/\t""#)]);
        assert_eq!(
            input_snapshot(InputShape::Uni, &input, Some("T")).unwrap(),
            format!(
                r#"{{"shape":"UNI","payload":{},"items":[]}}"#,
                env_text("T", "[\"é/\\t\"]")
            )
        );
    }

    // ----- resume (§4.6)

    fn resume_text(response: Option<&str>, output_type: &str) -> String {
        serde_json::to_string(&resume_envelope(response, output_type).unwrap()).unwrap()
    }

    #[test]
    fn work_10_resume_example_byte_for_byte() {
        let body: Value = serde_json::from_str(SECTION_2_5_BODY).unwrap();
        let stored = flatten(&body["responsePayload"]).unwrap();
        assert_eq!(stored, r#"{"approved":true,"note":"Looks good","score":7}"#);
        assert_eq!(
            resume_text(
                Some(&stored),
                "org.pipelineframework.example.ApprovalDecision"
            ),
            r#"{"payloadTypeId":"org.pipelineframework.example.ApprovalDecision","payloadEncoding":"application/tpf-transition+json","payload":"{\"approved\":true,\"note\":\"Looks good\",\"score\":7}"}"#
        );
    }

    #[test]
    fn resume_rule_1_null_response() {
        assert_eq!(
            resume_envelope(None, "com.acme.X").unwrap(),
            null_envelope()
        );
        assert_eq!(
            resume_envelope(Some(" null "), MAP_TYPE).unwrap(),
            null_envelope()
        );
        assert_eq!(
            resume_envelope(Some("null"), STRING_TYPE).unwrap(),
            null_envelope()
        );
        assert_eq!(
            serde_json::to_string(&null_envelope()).unwrap(),
            r#"{"payloadTypeId":"null","payloadEncoding":"application/tpf-transition+json","payload":"null"}"#
        );
    }

    #[test]
    fn resume_rule_2_lifts_the_response_as_the_demo_client_labels_it() {
        let body: Value = serde_json::from_str(SECTION_2_5_BODY).unwrap();
        let envelope = &body["responsePayload"];
        let stored = flatten(envelope).unwrap();
        // Lift is the inverse of Flatten: the completion's envelope comes back.
        assert_eq!(resume_envelope(Some(&stored), MAP_TYPE).unwrap(), *envelope);
        assert_eq!(
            resume_envelope(Some(&stored), LIST_TYPE).unwrap(),
            *envelope
        );
        assert_eq!(
            resume_envelope(Some("[\"a\",\"b\"]"), LIST_TYPE).unwrap(),
            exact_examples()[4]
        );
        // Set labels only an array at the top.
        let set = resume_envelope(Some("[\"a\",\"b\"]"), SET_TYPE).unwrap();
        assert_eq!(set["payloadTypeId"], SET_TYPE);
        assert_eq!(set["payload"], exact_examples()[4]["payload"]);
        assert_eq!(
            resume_envelope(Some(r#"{"value":42}"#), SET_TYPE).unwrap(),
            exact_examples()[3]
        );
        assert_eq!(
            resume_envelope(Some("\"x\""), MAP_TYPE).unwrap(),
            exact_examples()[0]
        );
        assert_eq!(
            resume_envelope(Some("42"), LIST_TYPE).unwrap(),
            exact_examples()[1]
        );
    }

    #[test]
    fn lift_labels_scalars_and_nested_containers() {
        let text = r#"[1, -9223372036854775808, 9223372036854775807, 9223372036854775808, -0, 27.50, 1e3, 2E-1, true, false, null, "s", [], {}, {"k":[1]}]"#;
        let lifted = resume_envelope(Some(text), LIST_TYPE).unwrap();
        assert_eq!(lifted["payloadTypeId"], LIST_TYPE);
        let expected_items = [
            env_text(LONG_TYPE, "1"),
            env_text(LONG_TYPE, "-9223372036854775808"),
            env_text(LONG_TYPE, "9223372036854775807"),
            env_text(BIG_INTEGER_TYPE, "9223372036854775808"),
            env_text(LONG_TYPE, "-0"),
            env_text(DOUBLE_TYPE, "27.50"),
            env_text(DOUBLE_TYPE, "1e3"),
            env_text(DOUBLE_TYPE, "2E-1"),
            env_text(BOOLEAN_TYPE, "true"),
            env_text(BOOLEAN_TYPE, "false"),
            env_text(NULL_TYPE, "null"),
            env_text(STRING_TYPE, "\"s\""),
            env_text(LIST_TYPE, r#"{"items":[]}"#),
            env_text(MAP_TYPE, r#"{"items":{}}"#),
            env_text(
                MAP_TYPE,
                &format!(
                    r#"{{"items":{{"k":{}}}}}"#,
                    env_text(
                        LIST_TYPE,
                        &format!(r#"{{"items":[{}]}}"#, env_text(LONG_TYPE, "1"))
                    )
                ),
            ),
        ];
        assert_eq!(
            lifted["payload"].as_str().unwrap(),
            format!(r#"{{"items":[{}]}}"#, expected_items.join(","))
        );
        // What Lift builds is valid and flattens back to the compact response.
        validate_envelope("p", &lifted).unwrap();
        assert_eq!(flatten(&lifted).unwrap(), compact(text).unwrap());
    }

    #[test]
    fn lift_fails_on_a_blank_key() {
        assert!(resume_envelope(Some(r#"{"a":{" ":1}}"#), MAP_TYPE).is_err());
        assert!(resume_envelope(Some(r#"{"":1}"#), LIST_TYPE).is_err());
        // A blank key outside Lift is just data.
        assert_eq!(
            resume_text(Some(r#"{"":1}"#), "com.acme.X"),
            r#"{"payloadTypeId":"com.acme.X","payloadEncoding":"application/tpf-transition+json","payload":"{\"\":1}"}"#
        );
    }

    #[test]
    fn lift_of_deeply_nested_json_fails_instead_of_exploding() {
        let deep = format!("{}\"x\"{}", "[".repeat(120), "]".repeat(120));
        let error = resume_envelope(Some(&deep), LIST_TYPE).unwrap_err();
        assert!(error.contains("exceeds"), "{error}");
        // A few levels are fine.
        let shallow = format!("{}\"x\"{}", "[".repeat(8), "]".repeat(8));
        let lifted = resume_envelope(Some(&shallow), LIST_TYPE).unwrap();
        assert_eq!(flatten(&lifted).unwrap(), shallow);
    }

    #[test]
    fn resume_rule_3_string_output_type_compacts() {
        assert_eq!(
            resume_text(Some(" \"{\\\"a\\\": 1}\" "), STRING_TYPE),
            r#"{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"{\\\"a\\\": 1}\""}"#
        );
        assert_eq!(
            resume_text(Some("{ \"a\" : 1.0 }"), STRING_TYPE),
            r#"{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"{\"a\":1.0}"}"#
        );
    }

    #[test]
    fn resume_rule_4_json_text_in_a_string_is_used_trimmed() {
        assert_eq!(
            resume_text(Some(r#"" \n{\"a\": 1.50}\t""#), "com.acme.X"),
            r#"{"payloadTypeId":"com.acme.X","payloadEncoding":"application/tpf-transition+json","payload":"{\"a\": 1.50}"}"#
        );
        assert_eq!(
            resume_text(Some(r#""[1, 2]""#), "com.acme.X"),
            r#"{"payloadTypeId":"com.acme.X","payloadEncoding":"application/tpf-transition+json","payload":"[1, 2]"}"#
        );
        // Not JSON, or not starting with { or [: rule 5 (the string itself).
        for text in [r#""{not json""#, r#""42""#, r#""x [1]""#] {
            let v = resume_envelope(Some(text), "com.acme.X").unwrap();
            assert_eq!(v["payload"], text);
        }
    }

    #[test]
    fn resume_rule_5_compacts_the_response() {
        assert_eq!(
            resume_text(Some(" [ 1 , 27.50 , \"\\u00e9\" ] "), "com.acme.X"),
            r#"{"payloadTypeId":"com.acme.X","payloadEncoding":"application/tpf-transition+json","payload":"[1,27.50,\"é\"]"}"#
        );
        assert_eq!(
            resume_text(Some("7"), "java.lang.Integer"),
            r#"{"payloadTypeId":"java.lang.Integer","payloadEncoding":"application/tpf-transition+json","payload":"7"}"#
        );
    }

    #[test]
    fn resume_refuses_an_unreadable_response() {
        assert!(resume_envelope(Some("{"), "com.acme.X").is_err());
        assert!(resume_envelope(Some(""), MAP_TYPE).is_err());
    }
}
