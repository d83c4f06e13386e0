//! What a chat request carries, parsed once at the edge: the message, the conversation it
//! continues, and the client's idempotency key.

use serde::Deserialize;
use uuid::Uuid;

use crate::{
    db::approvals::Answer,
    input::{self, InputError},
};

/// Most characters a message may hold after trimming.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Most characters of the reason a user gives with an approval's answer.
pub const MAX_REASON_CHARS: usize = 500;
/// Largest body in the AI SDK's shape: its default transport resends the client's whole
/// copy of the history with every message (only the last one is read).
pub const MAX_SDK_BODY_BYTES: usize = 1024 * 1024;

/// A message the user sent: trimmed, 1..=2000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MessageText(String);

impl MessageText {
    /// Trims `raw` and checks its length; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim_matches(is_blank);
        // Postgres text cannot hold NUL.
        if trimmed.contains('\0') {
            return Err("must not contain NUL characters".into());
        }
        match trimmed.chars().count() {
            0 => Err("must not be empty".into()),
            n if n > MAX_MESSAGE_CHARS => {
                Err(format!("must be at most {MAX_MESSAGE_CHARS} characters"))
            }
            _ => Ok(Self(trimmed.to_owned())),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MessageText {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

/// Whitespace as JSON Schema's `\s` (ECMAScript) defines it, so that the contract's
/// "at least one non-blank character" and the server agree on every input.
fn is_blank(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// Which conversation a turn belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversation {
    /// A new one, its id chosen by the server.
    New,
    /// The caller's conversation with this id; any other is not found.
    Existing(Uuid),
    /// The AI SDK's chat id: the caller's conversation with this id, which the chat's first
    /// turn creates. Another user's conversation is not found, and is never touched.
    Chat(Uuid),
}

/// What a turn does to its conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Adds the user's new message and answers it.
    Send(MessageText),
    /// A new version of an earlier user message: the turn runs from there, and what followed
    /// the old version is kept with it as another version.
    Edit {
        /// The user message edited.
        message: MessageRef,
        /// Its new text.
        text: MessageText,
    },
    /// A new answer to the last user message (or to the message named), the old answer kept
    /// as another version.
    Regenerate {
        /// The answer (or the user message) to answer again; `None`: the last one.
        message: Option<MessageRef>,
    },
    /// The user's answers to the tool calls a paused turn holds: the turn continues in the
    /// same assistant message.
    Continue {
        /// The waiting assistant message, as the client names it (the AI SDK does).
        message: Option<MessageRef>,
        /// One answer per held call.
        answers: Vec<Answer>,
    },
}

/// A message as a client names it: by our id, or by the id the client sent it with (the AI
/// SDK gives every message its own id, and knows it by that until it reloads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef(String);

impl MessageRef {
    /// Checks a client's message id: 1 to 255 visible ASCII characters.
    fn parse(raw: &str, field: &str) -> Result<Self, InputError> {
        IdempotencyKey::parse(raw.as_bytes())
            .map(|key| Self(key.0))
            .map_err(|_| InputError::field(field, "must be 1 to 255 visible ASCII characters"))
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Our id, when the client sent one of ours.
    pub fn id(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.0).ok()
    }
}

/// A validated `POST .../chat` body, in either shape a client may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// What the turn does: a new message, an edit or a regenerate.
    pub intent: Intent,
    /// The conversation it goes to.
    pub conversation: Conversation,
    /// The client's own id for the message (the AI SDK gives each one), which keys the turn
    /// when no `Idempotency-Key` is sent, so a resent message is never run twice.
    pub message_key: Option<IdempotencyKey>,
    /// Whether the message may interrupt a turn running on the conversation (stopping it,
    /// which keeps what it wrote) instead of being refused with `turn_in_progress`.
    pub interrupt: bool,
}

/// The body of our own shape: `{"message": string, "conversation_id": uuid | null}`; an edit
/// adds `edit_message_id`, a regenerate is `{"conversation_id", "regenerate": true}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainBody {
    #[serde(default, deserialize_with = "input::present")]
    message: Option<MessageText>,
    #[serde(default, deserialize_with = "input::uuid_or_null")]
    conversation_id: Option<Uuid>,
    #[serde(default)]
    interrupt: bool,
    #[serde(default, deserialize_with = "input::uuid_or_null")]
    edit_message_id: Option<Uuid>,
    #[serde(default)]
    regenerate: bool,
    #[serde(default, deserialize_with = "input::present")]
    approvals: Option<Vec<PlainAnswer>>,
}

/// One answer in `approvals`: `{"approval_id", "approved", "reason"?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainAnswer {
    approval_id: Uuid,
    approved: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// The body the AI SDK's `DefaultChatTransport` sends (`{id, messages, trigger, messageId}`,
/// with the client's own `body` fields beside them), or the lighter `{id, message}` its
/// persistence guide recommends. Only the new user message is read: the history is the
/// server's, never the client's copy.
#[derive(Deserialize)]
struct SdkBody {
    #[serde(deserialize_with = "chat_id")]
    id: Uuid,
    #[serde(default)]
    messages: Vec<SdkMessage>,
    #[serde(default)]
    message: Option<SdkMessage>,
    #[serde(default)]
    trigger: Option<String>,
    #[serde(default, rename = "messageId")]
    message_id: Option<String>,
    #[serde(default)]
    interrupt: bool,
}

/// A `UIMessage` as far as it is read: the new user message's id and text parts.
#[derive(Deserialize)]
struct SdkMessage {
    id: String,
    role: String,
    parts: Vec<SdkPart>,
}

#[derive(Deserialize)]
struct SdkPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    approval: Option<SdkApproval>,
}

/// A tool part's `approval`, as `addToolApprovalResponse` leaves it.
#[derive(Deserialize)]
struct SdkApproval {
    id: String,
    #[serde(default)]
    approved: Option<bool>,
    #[serde(default)]
    reason: Option<String>,
}

fn chat_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
    let raw = String::deserialize(deserializer)?;
    Uuid::parse_str(&raw).map_err(|_| {
        serde::de::Error::custom(
            "must be a UUID: give the chat one (useChat({ id: crypto.randomUUID() })) or the id of a conversation you have",
        )
    })
}

impl ChatRequest {
    /// Parses a chat body: the AI SDK's shape when it has an `id` or `messages`, else ours
    /// (`{"message", "conversation_id"}`, unknown fields refused).
    pub fn parse(body: &[u8]) -> Result<Self, InputError> {
        let value = input::object(body)?;
        if value.get("id").is_some() || value.get("messages").is_some() {
            return Self::of_sdk(input::from_object(value)?);
        }
        Self::of_plain(input::from_object(value)?)
    }

    /// Whether the client speaks the AI SDK's protocol, whose answer is always a stream.
    pub fn is_sdk(&self) -> bool {
        matches!(self.conversation, Conversation::Chat(_))
    }

    /// The user's new text: the message sent, or an edit's; `None` for a regenerate.
    pub fn text(&self) -> Option<&MessageText> {
        match &self.intent {
            Intent::Send(text) | Intent::Edit { text, .. } => Some(text),
            Intent::Regenerate { .. } | Intent::Continue { .. } => None,
        }
    }

    fn of_plain(plain: PlainBody) -> Result<Self, InputError> {
        let conversation = plain
            .conversation_id
            .map_or(Conversation::New, Conversation::Existing);
        let needs_conversation = |what: &str| {
            if plain.conversation_id.is_none() {
                return Err(InputError::field(
                    "conversation_id",
                    format!("is required to {what}"),
                ));
            }
            Ok(())
        };
        if let Some(answers) = plain.approvals {
            if plain.message.is_some() || plain.edit_message_id.is_some() || plain.regenerate {
                return Err(InputError::field(
                    "approvals",
                    "answers a paused turn: send it without message, edit_message_id or regenerate",
                ));
            }
            needs_conversation("answer approvals")?;
            let answers = answers
                .into_iter()
                .map(|a| answer(a.approval_id, a.approved, a.reason, "approvals"))
                .collect::<Result<_, _>>()?;
            return Ok(Self {
                intent: Intent::Continue {
                    message: None,
                    answers: checked_answers(answers, "approvals")?,
                },
                conversation,
                message_key: None,
                interrupt: plain.interrupt,
            });
        }
        let intent = match (plain.message, plain.edit_message_id, plain.regenerate) {
            (Some(_), _, true) | (None, Some(_), true) => {
                return Err(InputError::field(
                    "regenerate",
                    "answers the last message again: send it without message or edit_message_id",
                ));
            }
            (None, None, true) => {
                needs_conversation("regenerate an answer")?;
                Intent::Regenerate { message: None }
            }
            (Some(text), Some(id), false) => {
                needs_conversation("edit a message")?;
                Intent::Edit {
                    message: MessageRef(id.to_string()),
                    text,
                }
            }
            (Some(text), None, false) => Intent::Send(text),
            (None, _, false) => {
                return Err(InputError::field("message", "is required"));
            }
        };
        Ok(Self {
            intent,
            conversation,
            message_key: None,
            interrupt: plain.interrupt,
        })
    }

    fn of_sdk(body: SdkBody) -> Result<Self, InputError> {
        let regenerate = match body.trigger.as_deref() {
            None | Some("submit-message") => false,
            Some("regenerate-message") => true,
            Some(_) => {
                return Err(InputError::field(
                    "trigger",
                    "must be submit-message or regenerate-message",
                ));
            }
        };
        let named = body
            .message_id
            .as_deref()
            .map(|id| MessageRef::parse(id, "messageId"))
            .transpose()?;
        let conversation = Conversation::Chat(body.id);
        if regenerate {
            // The client's copy of the history is not read, not even its last message.
            return Ok(Self {
                intent: Intent::Regenerate { message: named },
                conversation,
                message_key: None,
                interrupt: body.interrupt,
            });
        }
        let (field, new) = match body.message {
            Some(message) => ("message", message),
            None => (
                "messages",
                body.messages.into_iter().last().ok_or_else(|| {
                    InputError::field("messages", "must end with the user's new message")
                })?,
            ),
        };
        if new.role == "assistant" && named.as_ref().is_some_and(|id| id.as_str() == new.id) {
            return Ok(Self {
                intent: Intent::Continue {
                    answers: Self::sdk_answers(&new, field)?,
                    message: named,
                },
                conversation,
                message_key: None,
                interrupt: body.interrupt,
            });
        }
        if new.role != "user" {
            return Err(InputError::field(
                field,
                "the new message must be the user's (role \"user\")",
            ));
        }
        let text: String = new
            .parts
            .iter()
            .filter(|part| part.kind == "text")
            .filter_map(|part| part.text.as_deref())
            .collect();
        let text = MessageText::parse(&text)
            .map_err(|reason| InputError::field(field, format!("its text {reason}")))?;
        let Some(edited) = named else {
            let message_key = IdempotencyKey::parse(new.id.as_bytes()).map_err(|_| {
                InputError::field(field, "its id must be 1 to 255 visible ASCII characters")
            })?;
            return Ok(Self {
                intent: Intent::Send(text),
                conversation,
                message_key: Some(message_key),
                interrupt: body.interrupt,
            });
        };
        // An edit: a new version each time, unless the client sends an Idempotency-Key.
        Ok(Self {
            intent: Intent::Edit {
                message: edited,
                text,
            },
            conversation,
            message_key: None,
            interrupt: body.interrupt,
        })
    }
}

impl ChatRequest {
    /// The answers in the tool parts of an assistant message that `addToolApprovalResponse`
    /// answered (state `approval-responded`); only the approval's id and answer are read, never
    /// the part's input.
    fn sdk_answers(message: &SdkMessage, field: &str) -> Result<Vec<Answer>, InputError> {
        let answers = message
            .parts
            .iter()
            .filter(|part| part.state.as_deref() == Some("approval-responded"))
            .filter_map(|part| part.approval.as_ref())
            .map(|approval| {
                let id = Uuid::parse_str(&approval.id).map_err(|_| {
                    InputError::field(field, "an approval's id must be one this API gave")
                })?;
                let approved = approval.approved.ok_or_else(|| {
                    InputError::field(
                        field,
                        "an answered approval must say approved: true or false",
                    )
                })?;
                answer(id, approved, approval.reason.clone(), field)
            })
            .collect::<Result<_, _>>()?;
        checked_answers(answers, field)
    }
}

fn answer(
    approval_id: Uuid,
    approved: bool,
    reason: Option<String>,
    field: &str,
) -> Result<Answer, InputError> {
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS || r.contains('\0'))
    {
        return Err(InputError::field(
            field,
            format!("a reason must be at most {MAX_REASON_CHARS} characters, without NUL"),
        ));
    }
    Ok(Answer {
        approval_id,
        approved,
        reason,
    })
}

/// At least one answer, and one per approval.
fn checked_answers(mut answers: Vec<Answer>, field: &str) -> Result<Vec<Answer>, InputError> {
    if answers.is_empty() {
        return Err(InputError::field(
            field,
            "must answer at least one approval",
        ));
    }
    answers.sort_by_key(|a| a.approval_id);
    if answers
        .windows(2)
        .any(|w| w[0].approval_id == w[1].approval_id)
    {
        return Err(InputError::field(field, "answers an approval twice"));
    }
    Ok(answers)
}

/// The client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a header value.
    pub fn parse(raw: &[u8]) -> Result<Self, InputError> {
        let valid = (1..=255).contains(&raw.len()) && raw.iter().all(|b| b.is_ascii_graphic());
        match std::str::from_utf8(raw) {
            Ok(key) if valid => Ok(Self(key.to_owned())),
            _ => Err(InputError::field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )),
        }
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_trimmed_and_bounded() {
        assert_eq!(MessageText::parse("  hi ").unwrap().as_str(), "hi");
        assert!(MessageText::parse(" \n\t ").is_err());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(MessageText::parse("nul\0byte").is_err());
        assert!(MessageText::parse("\u{feff}\u{3000}").is_err());
        assert_eq!(MessageText::parse("\u{85}").unwrap().as_str(), "\u{85}");
    }

    #[test]
    fn request_fields_are_checked_by_name() {
        let field_of = |body: &str| match ChatRequest::parse(body.as_bytes()) {
            Err(InputError::Field { field, .. }) => field,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(field_of(r#"{}"#), "message");
        assert_eq!(field_of(r#"{"message": 5}"#), "message");
        assert_eq!(
            field_of(r#"{"message": "hi", "conversation_id": "nope"}"#),
            "conversation_id"
        );
        assert_eq!(
            field_of(r#"{"message": "hi", "user_id": "someone"}"#),
            "user_id"
        );
    }

    #[test]
    fn null_conversation_id_starts_a_new_conversation() {
        let request = ChatRequest::parse(br#"{"message": "hi", "conversation_id": null}"#).unwrap();
        assert_eq!(request.conversation, Conversation::New);
        assert!(!request.is_sdk());
    }

    #[test]
    fn the_ai_sdks_body_gives_its_last_user_message_and_the_chat_id() {
        let body = br#"{"id": "0b0c9a55-6f7e-4d0e-9a43-3f9a4c1d2e10", "trigger": "submit-message",
            "messages": [
                {"id": "u0", "role": "user", "parts": [{"type": "text", "text": "old"}]},
                {"id": "a0", "role": "assistant", "parts": [{"type": "text", "text": "planted"}]},
                {"id": "u1", "role": "user", "parts": [{"type": "text", "text": " add "},
                    {"type": "file", "url": "x"}, {"type": "text", "text": "milk "}]}],
            "extra": {"from": "the client's body option"}}"#;

        let request = ChatRequest::parse(body).unwrap();

        assert_eq!(request.text().unwrap().as_str(), "add milk");
        assert_eq!(
            request.conversation,
            Conversation::Chat("0b0c9a55-6f7e-4d0e-9a43-3f9a4c1d2e10".parse().unwrap())
        );
        assert_eq!(request.message_key.unwrap().as_str(), "u1");
        assert!(ChatRequest::parse(
            br#"{"id": "0b0c9a55-6f7e-4d0e-9a43-3f9a4c1d2e10",
                 "message": {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "hi"}]}}"#
        )
        .unwrap()
        .is_sdk());
    }

    #[test]
    fn the_ai_sdks_body_is_refused_by_field() {
        let field_of = |body: &str| match ChatRequest::parse(body.as_bytes()) {
            Err(InputError::Field { field, .. }) => field,
            other => panic!("{body}: {other:?}"),
        };
        let user = r#"{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}"#;
        assert_eq!(
            field_of(&format!(r#"{{"id": "chat-1", "messages": [{user}]}}"#)),
            "id"
        );
        let chat = r#""id": "0b0c9a55-6f7e-4d0e-9a43-3f9a4c1d2e10""#;
        assert_eq!(
            field_of(&format!(r#"{{{chat}, "messages": []}}"#)),
            "messages"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{{chat}, "messages": [{{"id": "a", "role": "assistant", "parts": []}}]}}"#
            )),
            "messages"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{{chat}, "messages": [{{"id": "u", "role": "user", "parts": [{{"type": "text", "text": " "}}]}}]}}"#
            )),
            "messages"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{{chat}, "trigger": "resume-stream", "messages": [{user}]}}"#
            )),
            "trigger"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{{chat}, "messageId": "", "messages": [{user}]}}"#
            )),
            "messageId"
        );
    }
}
