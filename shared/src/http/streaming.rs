//! The body of a response that may be streamed: a whole JSON body, or bytes as a turn
//! produces them, with heartbeat comments filling any silence.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame};
use lambda_http::Response;
use tokio::{
    sync::mpsc,
    time::{Instant, Interval, MissedTickBehavior},
};

/// A response body for `lambda_http`'s streaming runtime.
#[derive(Debug)]
pub enum ResponseBody {
    /// A body known in full (a JSON answer or error).
    Full(Option<Bytes>),
    /// Bytes sent as they are produced; the body ends when every sender is gone.
    Stream {
        /// Where the producer's bytes arrive.
        receiver: mpsc::UnboundedReceiver<Bytes>,
        /// Fires after a silence as long as its period.
        heartbeat: Interval,
        /// Sent when the heartbeat fires.
        comment: &'static [u8],
    },
}

impl ResponseBody {
    /// A streamed body and the sender that feeds it; `comment` is sent after every
    /// `heartbeat` of silence.
    pub fn channel(
        heartbeat: Duration,
        comment: &'static [u8],
    ) -> (mpsc::UnboundedSender<Bytes>, Self) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        (
            sender,
            Self::Stream {
                receiver,
                heartbeat,
                comment,
            },
        )
    }

    /// A whole response (from [`json_response`](super::response::json_response) or an error) as this body.
    pub fn full(response: Response<lambda_http::Body>) -> Response<Self> {
        response.map(Self::from)
    }
}

impl From<lambda_http::Body> for ResponseBody {
    fn from(body: lambda_http::Body) -> Self {
        Self::Full(Some(Bytes::copy_from_slice(body.as_ref())))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    // Never an empty frame: it would go out as the zero-length chunk that ends a chunked
    // upload, and the Runtime API would see the response cut off (a 204 preflight killed the
    // chat function that way).
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            ResponseBody::Stream {
                receiver,
                heartbeat,
                comment,
            } => loop {
                return match receiver.poll_recv(cx) {
                    Poll::Ready(Some(bytes)) if bytes.is_empty() => continue,
                    Poll::Ready(Some(bytes)) => {
                        heartbeat.reset();
                        Poll::Ready(Some(Ok(Frame::data(bytes))))
                    }
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => match heartbeat.poll_tick(cx) {
                        Poll::Ready(_) => {
                            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(comment)))))
                        }
                        Poll::Pending => Poll::Pending,
                    },
                };
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn an_empty_body_has_no_frames_and_a_full_one_has_one() {
        let mut empty = ResponseBody::from(lambda_http::Body::Empty);
        let mut full = ResponseBody::from(lambda_http::Body::from("{}"));

        assert!(empty.frame().await.is_none(), "no zero-length frame");
        let frame = full.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "{}");
        assert!(full.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_stream_skips_empty_sends() {
        let (sender, mut body) = ResponseBody::channel(Duration::from_secs(60), b": hb\n\n");
        sender.send(Bytes::new()).unwrap();
        sender.send(Bytes::from_static(b"data: x\n\n")).unwrap();
        drop(sender);

        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "data: x\n\n");
        assert!(body.frame().await.is_none());
    }
}
