//! `GET /api/{user_id}/conversations`, `GET` and `DELETE /api/{user_id}/conversations/{id}`,
//! and `POST /api/{user_id}/conversations/{id}/messages/{message_id}/show` (switch versions).

use lambda_http::{Body, Request, Response, http::StatusCode};
use serde::Serialize;

use uuid::Uuid;

use crate::{
    app::{App, Uses},
    auth::UserId,
    chat::FinishReason,
    db::{self, conversations::Conversation, messages::StoredMessage, versions::Switch},
    http::{self, ApiError},
    input,
    llm::Reasoning,
    ui_stream,
};

/// What these handlers' functions build at cold start: the database and token verification.
pub const USES: Uses = Uses::Tokens;

#[derive(Serialize)]
struct ConversationList {
    conversations: Vec<Conversation>,
    total: i64,
    limit: i64,
    offset: i64,
}

/// One conversation with a page of its messages: ours ([`MessageView`]), or the AI SDK's
/// `UIMessage`s (`?format=ui`).
#[derive(Serialize)]
struct ConversationDetail<M> {
    #[serde(flatten)]
    conversation: Conversation,
    messages: Vec<M>,
    has_more: bool,
}

/// A stored message as answered: an assistant message says how it ended, and carries the
/// reasoning's readable text only when asked for (`?include=reasoning`).
#[derive(Serialize)]
struct MessageView {
    #[serde(flatten)]
    message: StoredMessage,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<FinishReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<String>,
}

impl MessageView {
    fn of(message: StoredMessage, include_reasoning: bool) -> Self {
        let reasoning =
            (include_reasoning && message.role == db::messages::Role::Assistant).then(|| {
                serde_json::from_value::<Reasoning>(message.reasoning.clone())
                    .unwrap_or_default()
                    .text()
            });
        let finish_reason =
            (message.role == db::messages::Role::Assistant).then_some(message.finish_reason);
        Self {
            message,
            finish_reason,
            reasoning,
        }
    }
}

/// Lists the caller's conversations, most recently updated first: `?limit=1..=100&offset=0..`.
pub async fn list(app: &App, req: Request) -> Response<Body> {
    http::serve("list_conversations", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        let limit = input::bounded_int(http::query_param(&req, "limit"), "limit", 20, 1, 100)?;
        let offset = input::bounded_int(
            http::query_param(&req, "offset"),
            "offset",
            0,
            0,
            i32::MAX.into(),
        )?;
        let client = app.db.get().await?;
        let page = db::conversations::list(&client, &user, limit, offset).await?;
        Ok(http::json_response(
            StatusCode::OK,
            &ConversationList {
                conversations: page.conversations,
                total: page.total,
                limit,
                offset,
            },
        ))
    })
    .await
}

/// Shows one of the caller's conversations with its latest messages, oldest first:
/// `?limit=1..=200`, `?include=reasoning`, `?format=ui` (as the AI SDK's `UIMessage[]`).
pub async fn get(app: &App, req: Request) -> Response<Body> {
    http::serve("get_conversation", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        let id = input::uuid(http::path_param(&req, "conversation_id"), "conversation_id")?;
        let view = View::of(&req)?;
        let client = app.db.get().await?;
        view.answer(&client, &user, id).await
    })
    .await
}

/// Shows another version of a message: that version and the rest of its path become the
/// conversation's active path (the path shown until now is kept as a version), and the
/// conversation is answered as `GET` answers it (same parameters). Refused with 409 while a
/// turn runs on it.
pub async fn show_version(app: &App, req: Request) -> Response<Body> {
    http::serve("show_version", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        let id = input::uuid(http::path_param(&req, "conversation_id"), "conversation_id")?;
        let version = input::uuid(http::path_param(&req, "message_id"), "message_id")?;
        let view = View::of(&req)?;
        let client = app.db.get().await?;
        match db::versions::switch(&client, &user, id, version, Uuid::new_v4()).await? {
            Switch::Switched | Switch::AlreadyShown => {}
            Switch::ConversationNotFound => return Err(ApiError::ConversationNotFound),
            Switch::VersionNotFound => return Err(ApiError::MessageNotFound),
            Switch::Busy => return Err(ApiError::TurnInProgress),
        }
        view.answer(&client, &user, id).await
    })
    .await
}

/// How a conversation is answered: how many messages, with reasoning or not, in which shape.
struct View {
    limit: i64,
    reasoning: bool,
    as_ui: bool,
}

impl View {
    fn of(req: &Request) -> Result<Self, ApiError> {
        let limit = input::bounded_int(http::query_param(req, "limit"), "limit", 100, 1, 200)?;
        let reasoning = input::includes_reasoning(http::query_param(req, "include"))?;
        let as_ui = match http::query_param(req, "format") {
            None => false,
            Some("ui") => true,
            Some(_) => {
                let reason = "must be \"ui\" (the AI SDK's UIMessage[]); leave it out for ours";
                return Err(input::InputError::field("format", reason).into());
            }
        };
        Ok(Self {
            limit,
            reasoning,
            as_ui,
        })
    }

    /// The conversation `id` with its latest messages on the active path.
    async fn answer(
        &self,
        client: &db::Client,
        user: &UserId,
        id: Uuid,
    ) -> Result<Response<Body>, ApiError> {
        let conversation = db::conversations::get(client, user, id)
            .await?
            .ok_or(ApiError::ConversationNotFound)?;
        let last = conversation.message_count;
        // `limit` is at most 200, so the narrowing cannot truncate.
        let first = (last - self.limit as i32 + 1).max(1);
        let messages = db::messages::range(client, user, id, first, last).await?;
        if self.as_ui {
            let messages = ui_stream::ui_messages(id, &messages, self.reasoning);
            return Ok(http::json_response(
                StatusCode::OK,
                &ConversationDetail {
                    has_more: first > 1,
                    conversation,
                    messages,
                },
            ));
        }
        Ok(http::json_response(
            StatusCode::OK,
            &ConversationDetail {
                has_more: first > 1,
                conversation,
                messages: messages
                    .into_iter()
                    .map(|m| MessageView::of(m, self.reasoning))
                    .collect::<Vec<_>>(),
            },
        ))
    }
}

/// Deletes one of the caller's conversations and its messages: 204, or 404 and nothing deleted.
pub async fn delete(app: &App, req: Request) -> Response<Body> {
    http::serve("delete_conversation", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        let id = input::uuid(http::path_param(&req, "conversation_id"), "conversation_id")?;
        let client = app.db.get().await?;
        if !db::conversations::delete(&client, &user, id).await? {
            return Err(ApiError::ConversationNotFound);
        }
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    })
    .await
}
