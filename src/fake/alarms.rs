//! Alarms and webhook (notification) recipients, per instance: what
//! `/api/instances/{id}/alarms[/{aid}]` and `/api/instances/{id}/alarms/recipients[/{rid}]`
//! hold, the rules a write must pass, and the JSON shapes of the Terraform provider's
//! recorded traffic.
//!
//! Every instance starts with what production gives a new one: a `Default` email recipient
//! and the mandatory `notice` alarm (`recipients: []`, i.e. every recipient), which can be
//! updated but never created or deleted. Ids are global and grow (recipients from 661, alarms
//! from 679, as in the recordings), handed out when an instance's alarms are first used.
//!
//! Validation errors answer 400 `{"errors":[{"field":"…"}]}` (one entry per bad field), other
//! refusals 422 `{"error":"…"}`. The 422 texts are the fake's own: nobody has recorded
//! production's.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Every alarm type CloudAMQP knows (the rules' list: one list).
pub const ALARM_TYPES: &[&str] = crate::rules::ALARM_TYPES;

/// The alarm types only dedicated plans have; a shared instance refuses them with a 422.
pub const DEDICATED_ONLY_ALARMS: &[&str] =
    &["cpu", "memory", "disk", "netsplit", "server_unreachable"];

/// Every recipient type CloudAMQP knows.
pub const RECIPIENT_TYPES: &[&str] = &[
    "email",
    "webhook",
    "slack",
    "teams",
    "pagerduty",
    "opsgenie",
    "opsgenie-eu",
    "victorops",
    "signl4",
];

/// Optional string fields kept on queue and consumer alarms.
const EXTRA_FIELDS: &[&str] = &["queue_regex", "vhost_regex", "message_type"];

const FIRST_RECIPIENT_ID: u64 = 661;
const FIRST_ALARM_ID: u64 = 679;

/// The 422 a `POST` of a `notice` alarm answers.
pub const NOTICE_CANNOT_BE_CREATED: &str =
    "The notice alarm can't be created: every instance has one, update it instead";
/// The 422 a `DELETE` of the `notice` alarm answers.
pub const NOTICE_CANNOT_BE_DELETED: &str = "The notice alarm can't be deleted";

/// A notification recipient, as `GET …/alarms/recipients` shows it (`last_status` is always
/// `null` here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRecipient {
    /// Given by the fake; ignored when seeding.
    pub id: u64,
    /// `email`, `webhook`, … (see [`RECIPIENT_TYPES`]).
    pub recipient_type: String,
    /// The address or URL, in clear (a webhook's token included), as production shows it.
    pub value: String,
    pub name: String,
    /// `null` or an object.
    pub options: Value,
}

impl FakeRecipient {
    /// A webhook recipient `{"type":"webhook","value":url,"name":name,"options":{}}`.
    pub fn webhook(url: &str, name: &str) -> Self {
        Self {
            id: 0,
            recipient_type: "webhook".to_owned(),
            value: url.to_owned(),
            name: name.to_owned(),
            options: json!({}),
        }
    }

    /// An email recipient with `options: null`.
    pub fn email(address: &str, name: &str) -> Self {
        Self {
            id: 0,
            recipient_type: "email".to_owned(),
            value: address.to_owned(),
            name: name.to_owned(),
            options: Value::Null,
        }
    }

    /// The object `POST` answers: the fields sent plus `id`.
    pub(crate) fn created_view(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.recipient_type,
            "value": self.value,
            "name": self.name,
            "options": self.options,
        })
    }

    /// The full object of `GET` and `PUT`.
    pub(crate) fn view(&self) -> Value {
        let mut view = self.created_view();
        if let Some(fields) = view.as_object_mut() {
            fields.insert("last_status".to_owned(), Value::Null);
        }
        view
    }
}

/// An alarm, as `GET …/alarms` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeAlarm {
    /// Given by the fake; ignored when seeding.
    pub id: u64,
    /// `cpu`, `memory`, … (see [`ALARM_TYPES`]).
    pub alarm_type: String,
    /// Absent from the JSON when `None` (the notice alarm has none).
    pub value_threshold: Option<u64>,
    /// Seconds the value must hold; absent from the JSON when `None`.
    pub time_threshold: Option<u64>,
    /// Seconds between reminders, 0 = never; `null` in the JSON when `None`.
    pub reminder_interval: Option<u64>,
    /// Recipient ids; empty means every recipient.
    pub recipients: Vec<u64>,
    pub enabled: bool,
    /// `queue_regex`, `vhost_regex`, `message_type` when they were sent.
    pub extra: BTreeMap<String, String>,
}

impl FakeAlarm {
    /// An enabled alarm of `alarm_type` with no thresholds, `reminder_interval` 0 and no
    /// recipients (every recipient).
    pub fn new(alarm_type: &str) -> Self {
        Self {
            id: 0,
            alarm_type: alarm_type.to_owned(),
            value_threshold: None,
            time_threshold: None,
            reminder_interval: Some(0),
            recipients: Vec::new(),
            enabled: true,
            extra: BTreeMap::new(),
        }
    }

    /// The same alarm with these thresholds.
    #[must_use]
    pub fn thresholds(mut self, value: u64, time: u64) -> Self {
        self.value_threshold = Some(value);
        self.time_threshold = Some(time);
        self
    }

    /// The same alarm with this `reminder_interval`.
    #[must_use]
    pub fn reminder_interval(mut self, seconds: u64) -> Self {
        self.reminder_interval = Some(seconds);
        self
    }

    /// The same alarm sent to these recipients only.
    #[must_use]
    pub fn recipients(mut self, ids: &[u64]) -> Self {
        self.recipients = ids.to_vec();
        self
    }

    /// The same alarm, enabled or not.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// The JSON of `GET`, `POST` and `PUT`.
    pub(crate) fn view(&self) -> Value {
        let mut fields = Map::new();
        fields.insert("id".to_owned(), json!(self.id));
        fields.insert("type".to_owned(), json!(self.alarm_type));
        if let Some(value) = self.value_threshold {
            fields.insert("value_threshold".to_owned(), json!(value));
        }
        if let Some(time) = self.time_threshold {
            fields.insert("time_threshold".to_owned(), json!(time));
        }
        fields.insert(
            "reminder_interval".to_owned(),
            json!(self.reminder_interval),
        );
        fields.insert("recipients".to_owned(), json!(self.recipients));
        fields.insert("enabled".to_owned(), json!(self.enabled));
        for (key, value) in &self.extra {
            fields.insert(key.clone(), json!(value));
        }
        Value::Object(fields)
    }
}

/// Why a write was refused; `routes` maps it to HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AlarmRefusal {
    /// 404 `{"error":"Invalid ID"}`: no such alarm or recipient on this instance.
    NotFound,
    /// 400 `{"errors":[{"field":…}, …]}`.
    Invalid(Vec<&'static str>),
    /// 422 `{"error":…}`.
    Refused(String),
}

/// One instance's recipients and alarms.
#[derive(Debug, Clone, Default)]
pub(crate) struct Board {
    pub recipients: Vec<FakeRecipient>,
    pub alarms: Vec<FakeAlarm>,
}

/// Every instance's board and the id counters.
#[derive(Debug)]
pub(crate) struct Alarms {
    boards: BTreeMap<u64, Board>,
    next_recipient: u64,
    next_alarm: u64,
}

impl Default for Alarms {
    fn default() -> Self {
        Self {
            boards: BTreeMap::new(),
            next_recipient: FIRST_RECIPIENT_ID,
            next_alarm: FIRST_ALARM_ID,
        }
    }
}

impl Alarms {
    /// Instance `id`'s board, made with production's defaults on first use. The caller has
    /// checked that the instance exists.
    pub fn board(&mut self, id: u64) -> &mut Board {
        if !self.boards.contains_key(&id) {
            let mut default = FakeRecipient::email("team@example.com", "Default");
            default.id = self.recipient_id();
            let notice = FakeAlarm {
                id: self.alarm_id(),
                reminder_interval: None,
                ..FakeAlarm::new("notice")
            };
            self.boards.insert(
                id,
                Board {
                    recipients: vec![default],
                    alarms: vec![notice],
                },
            );
        }
        self.boards.entry(id).or_default()
    }

    /// Adds a recipient without any check; returns its id.
    pub fn seed_recipient(&mut self, id: u64, mut recipient: FakeRecipient) -> u64 {
        recipient.id = self.recipient_id();
        let rid = recipient.id;
        self.board(id).recipients.push(recipient);
        rid
    }

    /// Adds an alarm without any check; returns its id.
    pub fn seed_alarm(&mut self, id: u64, mut alarm: FakeAlarm) -> u64 {
        alarm.id = self.alarm_id();
        let aid = alarm.id;
        self.board(id).alarms.push(alarm);
        aid
    }

    /// `POST …/alarms/recipients`.
    pub fn create_recipient(
        &mut self,
        id: u64,
        body: Option<&Map<String, Value>>,
    ) -> Result<FakeRecipient, AlarmRefusal> {
        let empty = Map::new();
        let recipient = read_recipient(FakeRecipient::email("", ""), body.unwrap_or(&empty), true)?;
        let rid = self.seed_recipient(id, recipient);
        self.board(id)
            .recipients
            .iter()
            .find(|r| r.id == rid)
            .cloned()
            .ok_or(AlarmRefusal::NotFound)
    }

    /// `PUT …/alarms/recipients/{rid}`: the fields sent replace the stored ones.
    pub fn update_recipient(
        &mut self,
        id: u64,
        rid: u64,
        body: Option<&Map<String, Value>>,
    ) -> Result<FakeRecipient, AlarmRefusal> {
        let board = self.board(id);
        let stored = board
            .recipients
            .iter_mut()
            .find(|r| r.id == rid)
            .ok_or(AlarmRefusal::NotFound)?;
        let empty = Map::new();
        let updated = read_recipient(stored.clone(), body.unwrap_or(&empty), false)?;
        *stored = updated.clone();
        Ok(updated)
    }

    /// `DELETE …/alarms/recipients/{rid}`; alarms that named it stop naming it.
    pub fn delete_recipient(&mut self, id: u64, rid: u64) -> Result<(), AlarmRefusal> {
        let board = self.board(id);
        let before = board.recipients.len();
        board.recipients.retain(|r| r.id != rid);
        if board.recipients.len() == before {
            return Err(AlarmRefusal::NotFound);
        }
        for alarm in &mut board.alarms {
            alarm.recipients.retain(|&r| r != rid);
        }
        Ok(())
    }

    /// `POST …/alarms`: validation (400) first, then the notice alarm and the shared plan
    /// refusals (422).
    pub fn create_alarm(
        &mut self,
        id: u64,
        dedicated: bool,
        body: Option<&Map<String, Value>>,
    ) -> Result<FakeAlarm, AlarmRefusal> {
        let empty = Map::new();
        let board = self.board(id);
        let alarm = read_alarm(None, body.unwrap_or(&empty), board)?;
        if alarm.alarm_type == "notice" {
            return Err(AlarmRefusal::Refused(NOTICE_CANNOT_BE_CREATED.to_owned()));
        }
        if !dedicated && DEDICATED_ONLY_ALARMS.contains(&alarm.alarm_type.as_str()) {
            return Err(AlarmRefusal::Refused(shared_refusal(&alarm.alarm_type)));
        }
        let aid = self.seed_alarm(id, alarm);
        self.board(id)
            .alarms
            .iter()
            .find(|a| a.id == aid)
            .cloned()
            .ok_or(AlarmRefusal::NotFound)
    }

    /// `PUT …/alarms/{aid}`: the fields sent replace the stored ones; the type cannot change.
    pub fn update_alarm(
        &mut self,
        id: u64,
        aid: u64,
        body: Option<&Map<String, Value>>,
    ) -> Result<FakeAlarm, AlarmRefusal> {
        let board = self.board(id);
        let index = board
            .alarms
            .iter()
            .position(|a| a.id == aid)
            .ok_or(AlarmRefusal::NotFound)?;
        let empty = Map::new();
        let updated = read_alarm(
            board.alarms.get(index).cloned(),
            body.unwrap_or(&empty),
            board,
        )?;
        if let Some(stored) = board.alarms.get_mut(index) {
            *stored = updated.clone();
        }
        Ok(updated)
    }

    /// `DELETE …/alarms/{aid}`; the notice alarm refuses with a 422.
    pub fn delete_alarm(&mut self, id: u64, aid: u64) -> Result<(), AlarmRefusal> {
        let board = self.board(id);
        let index = board
            .alarms
            .iter()
            .position(|a| a.id == aid)
            .ok_or(AlarmRefusal::NotFound)?;
        if board
            .alarms
            .get(index)
            .is_some_and(|a| a.alarm_type == "notice")
        {
            return Err(AlarmRefusal::Refused(NOTICE_CANNOT_BE_DELETED.to_owned()));
        }
        board.alarms.remove(index);
        Ok(())
    }

    fn recipient_id(&mut self) -> u64 {
        let id = self.next_recipient;
        self.next_recipient += 1;
        id
    }

    fn alarm_id(&mut self) -> u64 {
        let id = self.next_alarm;
        self.next_alarm += 1;
        id
    }
}

/// The 422 a shared instance answers to a dedicated-only alarm type.
pub fn shared_refusal(alarm_type: &str) -> String {
    format!("Alarm type {alarm_type} is only available on dedicated plans")
}

/// `base` with the recipient fields of `body`; `creating` makes `type` and `value` required.
fn read_recipient(
    mut base: FakeRecipient,
    body: &Map<String, Value>,
    creating: bool,
) -> Result<FakeRecipient, AlarmRefusal> {
    let mut bad = Vec::new();
    match body.get("type").map(Value::as_str) {
        Some(Some(kind)) if RECIPIENT_TYPES.contains(&kind) => {
            kind.clone_into(&mut base.recipient_type)
        }
        None if !creating => {}
        _ => bad.push("type"),
    }
    match body.get("value").map(Value::as_str) {
        Some(Some(value)) if !value.trim().is_empty() => value.clone_into(&mut base.value),
        None if !creating => {}
        _ => bad.push("value"),
    }
    if base.recipient_type == "webhook"
        && !bad.contains(&"value")
        && !(base.value.starts_with("https://") || base.value.starts_with("http://"))
    {
        bad.push("value");
    }
    match body.get("name") {
        None => {}
        Some(Value::String(name)) => name.clone_into(&mut base.name),
        Some(Value::Null) => base.name.clear(),
        Some(_) => bad.push("name"),
    }
    match body.get("options") {
        None => {}
        Some(options @ (Value::Null | Value::Object(_))) => base.options = options.clone(),
        Some(_) => bad.push("options"),
    }
    if bad.is_empty() {
        Ok(base)
    } else {
        Err(AlarmRefusal::Invalid(bad))
    }
}

/// `base` (`None`: a new alarm) with the alarm fields of `body`, checked against the
/// instance's recipients.
fn read_alarm(
    base: Option<FakeAlarm>,
    body: &Map<String, Value>,
    board: &Board,
) -> Result<FakeAlarm, AlarmRefusal> {
    let creating = base.is_none();
    let mut alarm = base.unwrap_or_else(|| FakeAlarm::new(""));
    let mut bad = Vec::new();
    match body.get("type").map(Value::as_str) {
        Some(Some(kind)) if creating && ALARM_TYPES.contains(&kind) => {
            kind.clone_into(&mut alarm.alarm_type)
        }
        Some(Some(kind)) if !creating && kind == alarm.alarm_type => {}
        None if !creating => {}
        _ => bad.push("type"),
    }
    let thresholds = crate::cloudamqp::alarms::THRESHOLD_TYPES.contains(&alarm.alarm_type.as_str());
    for (field, slot) in [
        ("value_threshold", &mut alarm.value_threshold),
        ("time_threshold", &mut alarm.time_threshold),
        ("reminder_interval", &mut alarm.reminder_interval),
    ] {
        match body.get(field) {
            None => {}
            Some(Value::Null) if field == "reminder_interval" => *slot = None,
            Some(value) => match unsigned(value) {
                Some(number) => *slot = Some(number),
                None => bad.push(field),
            },
        }
    }
    if thresholds {
        let percent = matches!(alarm.alarm_type.as_str(), "cpu" | "memory" | "disk");
        match alarm.value_threshold {
            None => push_once(&mut bad, "value_threshold"),
            Some(value) if percent && value > 100 => push_once(&mut bad, "value_threshold"),
            Some(_) => {}
        }
        if alarm.time_threshold.is_none() {
            alarm.time_threshold = Some(600);
        }
    }
    match body.get("enabled") {
        None => {}
        Some(value) => match boolean(value) {
            Some(enabled) => alarm.enabled = enabled,
            None => bad.push("enabled"),
        },
    }
    match body.get("recipients") {
        None => {}
        Some(value) => match recipient_ids(value) {
            Some(ids)
                if ids
                    .iter()
                    .all(|id| board.recipients.iter().any(|r| r.id == *id)) =>
            {
                alarm.recipients = ids;
            }
            _ => bad.push("recipients"),
        },
    }
    for field in EXTRA_FIELDS {
        match body.get(*field) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => {
                alarm.extra.insert((*field).to_owned(), text.clone());
            }
            Some(_) => bad.push(field),
        }
    }
    if bad.is_empty() {
        Ok(alarm)
    } else {
        Err(AlarmRefusal::Invalid(bad))
    }
}

fn push_once(bad: &mut Vec<&'static str>, field: &'static str) {
    if !bad.contains(&field) {
        bad.push(field);
    }
}

/// A non-negative integer from JSON or a form's string.
pub(crate) fn unsigned(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean from JSON or a form's `true`/`false`.
pub(crate) fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Recipient ids from a JSON array of integers, or a form's comma-separated string.
fn recipient_ids(value: &Value) -> Option<Vec<u64>> {
    match value {
        Value::Array(items) => items.iter().map(unsigned).collect(),
        Value::String(text) if text.trim().is_empty() => Some(Vec::new()),
        Value::String(text) => text.split(',').map(|id| id.trim().parse().ok()).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_new_board_has_the_default_recipient_and_the_notice_alarm() {
        let mut alarms = Alarms::default();
        let board = alarms.board(1).clone();
        assert_eq!(
            board.recipients[0].view(),
            json!({"id": 661, "type": "email", "value": "team@example.com", "name": "Default",
                   "options": null, "last_status": null})
        );
        assert_eq!(
            board.alarms[0].view(),
            json!({"id": 679, "type": "notice", "reminder_interval": null, "recipients": [],
                   "enabled": true})
        );
        assert_eq!(alarms.board(2).recipients[0].id, 662);
    }

    #[test]
    fn alarm_validation_names_every_bad_field() {
        let mut alarms = Alarms::default();
        let refused = alarms.create_alarm(
            1,
            true,
            Some(&body(
                json!({"type": "cpu", "value_threshold": 101, "recipients": [9],
                              "enabled": "yes"}),
            )),
        );
        assert_eq!(
            refused,
            Err(AlarmRefusal::Invalid(vec![
                "value_threshold",
                "enabled",
                "recipients"
            ]))
        );
        assert_eq!(
            alarms.create_alarm(1, true, None),
            Err(AlarmRefusal::Invalid(vec!["type"]))
        );
    }

    #[test]
    fn form_values_are_read_as_numbers_and_lists() {
        assert_eq!(unsigned(&json!("90")), Some(90));
        assert_eq!(unsigned(&json!(-1)), None);
        assert_eq!(recipient_ids(&json!("661, 662")), Some(vec![661, 662]));
        assert_eq!(boolean(&json!("false")), Some(false));
    }
}
