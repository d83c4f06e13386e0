//! One chat turn: store the user's message, rebuild the conversation, run the agent, store
//! the reply with the tool calls it made.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use crate::{
    agent::{self, Limits, ToolCallRecord, tools::TaskTools},
    app::App,
    auth::UserId,
    db::{self, DbError, messages::Role},
    input::{self, InputError},
    llm,
};

/// Most characters a message may hold after trimming.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Most stored messages replayed to the model each turn.
pub const HISTORY_LIMIT: i64 = 50;
/// Characters of the first message kept as the conversation's title.
const TITLE_CHARS: usize = 50;

/// A message the user sent: trimmed, 1..=2000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Trims `raw` and checks its length.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let trimmed = raw.trim();
        match trimmed.chars().count() {
            0 => Err(InputError::field("message", "must not be empty")),
            n if n > MAX_MESSAGE_CHARS => Err(InputError::field(
                "message",
                format!("must be at most {MAX_MESSAGE_CHARS} characters"),
            )),
            _ => Ok(Self(trimmed.to_owned())),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated `POST .../chat` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// What the user said.
    pub message: MessageText,
    /// The conversation to continue, or `None` to start one.
    pub conversation_id: Option<Uuid>,
}

impl ChatRequest {
    /// Parses `{"message": string, "conversation_id": uuid | null}`; unknown fields are refused.
    pub fn parse(body: &[u8]) -> Result<Self, InputError> {
        let object = input::json_object(body, &["message", "conversation_id"])?;
        let message = match object.get("message") {
            Some(Value::String(s)) => MessageText::parse(s)?,
            Some(_) => return Err(InputError::field("message", "must be a string")),
            None => return Err(InputError::field("message", "is required")),
        };
        let conversation_id = match object.get("conversation_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                Uuid::parse_str(s)
                    .map_err(|_| InputError::field("conversation_id", "must be a UUID"))?,
            ),
            Some(_) => {
                return Err(InputError::field(
                    "conversation_id",
                    "must be a UUID string or null",
                ));
            }
        };
        Ok(Self {
            message,
            conversation_id,
        })
    }
}

/// A completed turn, as answered to the client.
#[derive(Debug, Clone, Serialize)]
pub struct TurnReply {
    /// The conversation the turn belongs to.
    pub conversation_id: Uuid,
    /// The stored user message.
    pub user_message_id: Uuid,
    /// The stored assistant message.
    pub assistant_message_id: Uuid,
    /// The assistant's answer.
    pub response: String,
    /// Tools run during the turn, in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// When the assistant message was stored.
    pub created_at: DateTime<Utc>,
}

/// Why a turn did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The conversation is missing or someone else's.
    #[error("conversation not found")]
    ConversationNotFound,
    /// The model failed after the user message was stored.
    #[error("llm failed: {source}")]
    LlmFailed {
        /// Where the user message is stored.
        stored: StoredUserMessage,
        /// What went wrong.
        source: llm::LlmError,
    },
    /// No model is configured; the user message is stored.
    #[error("no llm configured")]
    LlmNotConfigured {
        /// Where the user message is stored.
        stored: StoredUserMessage,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Where a user message landed, so a client can retry the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredUserMessage {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The message.
    pub message_id: Uuid,
}

/// Runs one turn for `user`.
pub async fn run_turn(
    app: &App,
    user: &UserId,
    request: ChatRequest,
) -> Result<TurnReply, ChatError> {
    let deadline = Instant::now() + app.config.turn_deadline;
    let client = app.db.get().await.map_err(DbError::from)?;
    let text = request.message.as_str();

    // The user's message is stored before the model is asked, so an LLM failure loses nothing.
    let (stored, history) = match request.conversation_id {
        None => {
            let created =
                db::conversations::create_with_first_message(&client, user, &title_for(text), text)
                    .await?;
            let stored = StoredUserMessage {
                conversation_id: created.conversation_id,
                message_id: created.message_id,
            };
            (stored, Vec::new())
        }
        Some(conversation_id) => {
            let appended = db::messages::append(
                &client,
                user,
                conversation_id,
                Role::User,
                text,
                &Value::Array(Vec::new()),
            )
            .await?
            .ok_or(ChatError::ConversationNotFound)?;
            let mut history =
                db::messages::recent(&client, user, conversation_id, HISTORY_LIMIT).await?;
            history.pop(); // the message just stored; it is added below like in a new conversation
            let stored = StoredUserMessage {
                conversation_id,
                message_id: appended.id,
            };
            (stored, history)
        }
    };

    let Some(llm) = &app.llm else {
        return Err(ChatError::LlmNotConfigured { stored });
    };
    let mut prompt = Vec::with_capacity(history.len() + 2);
    prompt.push(llm::Message::System {
        content: agent::prompt::system_prompt(Utc::now().date_naive()),
    });
    prompt.extend(agent::replay(history));
    prompt.push(llm::Message::User {
        content: text.to_owned(),
    });

    let limits = Limits {
        max_rounds: app.config.agent_max_rounds,
        deadline,
    };
    let reply = agent::run(llm, &TaskTools::new(&client, user), prompt, limits)
        .await
        .map_err(|e| match e {
            agent::AgentError::Llm(source) => ChatError::LlmFailed { stored, source },
            agent::AgentError::Db(e) => ChatError::Db(e),
        })?;

    let tool_calls = serde_json::to_value(&reply.tool_calls).expect("tool calls serialise");
    let assistant = db::messages::append(
        &client,
        user,
        stored.conversation_id,
        Role::Assistant,
        &reply.text,
        &tool_calls,
    )
    .await?
    // The conversation was deleted while the model was thinking.
    .ok_or(ChatError::ConversationNotFound)?;

    Ok(TurnReply {
        conversation_id: stored.conversation_id,
        user_message_id: stored.message_id,
        assistant_message_id: assistant.id,
        response: reply.text,
        tool_calls: reply.tool_calls,
        created_at: assistant.created_at,
    })
}

/// The first message cut to about 50 characters at a word boundary.
pub fn title_for(message: &str) -> String {
    let flat: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= TITLE_CHARS {
        return flat;
    }
    let cut: String = flat.chars().take(TITLE_CHARS).collect();
    let ends_on_boundary = flat.chars().nth(TITLE_CHARS) == Some(' ');
    // Prefer the last word boundary unless that throws most of the title away.
    let kept = match cut.rfind(' ') {
        Some(at) if !ends_on_boundary && at >= TITLE_CHARS / 2 => &cut[..at],
        _ => cut.as_str(),
    };
    format!("{}…", kept.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_their_own_title() {
        assert_eq!(title_for("  buy   milk\n"), "buy milk");
    }

    #[test]
    fn long_messages_are_cut_at_a_word_boundary() {
        let title = title_for(
            "please remember that I need to buy milk and eggs before the shop closes tonight",
        );
        assert_eq!(title, "please remember that I need to buy milk and eggs…");
        assert!(title.chars().count() <= TITLE_CHARS + 1);
    }

    #[test]
    fn one_long_word_is_cut_mid_word() {
        let title = title_for(&"x".repeat(80));
        assert_eq!(title.chars().count(), TITLE_CHARS + 1);
    }

    #[test]
    fn message_is_trimmed_and_bounded() {
        assert_eq!(MessageText::parse("  hi ").unwrap().as_str(), "hi");
        assert!(MessageText::parse(" \n\t ").is_err());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
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
        assert_eq!(request.conversation_id, None);
    }
}
