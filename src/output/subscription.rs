//! A subscriber's end of the row changes: current rows, then upserts and progress marks, as an
//! async stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::Feed;

/// Row changes for one subscriber, in order: the matching current rows, a progress mark, then
/// upserts and progress marks as the rows change. Read it with [`recv`](Self::recv), or as a
/// [`Stream`](futures_util::Stream). It ends when the engine stops, or after
/// [`Feed::Closed`] when the subscriber fell too far behind.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Feed>,
}

impl Subscription {
    pub(crate) fn new(rx: mpsc::Receiver<Feed>) -> Self {
        Subscription { rx }
    }

    /// The next message; `None` once the subscription has ended.
    pub async fn recv(&mut self) -> Option<Feed> {
        self.rx.recv().await
    }

    /// The next message if one is waiting (for a caller that drives a [`Pipeline`] on its own
    /// thread); `None` when none is, or the subscription has ended.
    ///
    /// [`Pipeline`]: crate::Pipeline
    pub fn try_recv(&mut self) -> Option<Feed> {
        self.rx.try_recv().ok()
    }
}

impl futures_util::Stream for Subscription {
    type Item = Feed;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Feed>> {
        self.rx.poll_recv(cx)
    }
}
