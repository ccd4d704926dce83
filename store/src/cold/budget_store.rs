//! The IO budget as an [`ObjectStore`] wrapper (like object_store's `LimitStore`, with rates as well as a cap):
//! every request takes a request token and a concurrency slot, held until it is done (for a read, until its body
//! is consumed or dropped), and its bytes from the object-store byte bucket.
//!
//! Bytes are charged before the request when they are known (uploads, parts, ranged reads). A whole-object read
//! learns its size from the response: its bytes are charged then, without waiting, and later requests repay the
//! debt, so a response never idles against its HTTP timeout while the budget waits. A listing or a deletion
//! stream counts as one request (the store may page or batch underneath).

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

use crate::budget::{IoBudget, ObjectPermit};

/// Wraps a store and draws every request from an [`IoBudget`]; see the module documentation.
#[derive(Debug)]
pub struct BudgetStore {
    inner: Arc<dyn ObjectStore>,
    budget: Arc<IoBudget>,
}

impl BudgetStore {
    pub fn new(inner: Arc<dyn ObjectStore>, budget: Arc<IoBudget>) -> Self {
        Self { inner, budget }
    }
}

impl std::fmt::Display for BudgetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BudgetStore({})", self.inner)
    }
}

/// The length of a range known before the request.
fn known_len(range: &Option<GetRange>) -> Option<u64> {
    match range {
        Some(GetRange::Bounded(r)) => Some(r.end.saturating_sub(r.start)),
        _ => None,
    }
}

/// Keeps a permit until the stream it wraps is consumed or dropped.
struct WithPermit<S> {
    inner: S,
    _permit: ObjectPermit,
}

impl<S: Stream + Unpin> Stream for WithPermit<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A stream that first waits for one request of the budget, then runs `start` and holds the permit throughout.
fn budgeted_stream<T: Send + 'static>(
    budget: Arc<IoBudget>,
    start: impl FnOnce() -> BoxStream<'static, Result<T>> + Send + 'static,
) -> BoxStream<'static, Result<T>> {
    stream::once(async move {
        let permit = budget.acquire_object(0).await;
        WithPermit { inner: start(), _permit: permit }
    })
    .flatten()
    .boxed()
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for BudgetStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let _permit = self.budget.acquire_object(payload.content_length() as u64).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        let upload = {
            let _permit = self.budget.acquire_object(0).await;
            self.inner.put_multipart_opts(location, opts).await?
        };
        Ok(Box::new(BudgetUpload { inner: upload, budget: Arc::clone(&self.budget) }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let known = if options.head { Some(0) } else { known_len(&options.range) };
        let permit = self.budget.acquire_object(known.unwrap_or(0)).await;
        let mut r = self.inner.get_opts(location, options).await?;
        if known.is_none() {
            self.budget.charge_object_bytes(r.range.end.saturating_sub(r.range.start));
        }
        r.payload = match r.payload {
            GetResultPayload::Stream(s) => GetResultPayload::Stream(WithPermit { inner: s, _permit: permit }.boxed()),
            file @ GetResultPayload::File(..) => file,
        };
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let bytes = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        let _permit = self.budget.acquire_object(bytes).await;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let inner = Arc::clone(&self.inner);
        budgeted_stream(Arc::clone(&self.budget), move || inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let (inner, prefix) = (Arc::clone(&self.inner), prefix.cloned());
        budgeted_stream(Arc::clone(&self.budget), move || inner.list(prefix.as_ref()))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        let (inner, prefix, offset) = (Arc::clone(&self.inner), prefix.cloned(), offset.clone());
        budgeted_stream(Arc::clone(&self.budget), move || inner.list_with_offset(prefix.as_ref(), &offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let _permit = self.budget.acquire_object(0).await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let _permit = self.budget.acquire_object(0).await;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let _permit = self.budget.acquire_object(0).await;
        self.inner.rename_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct BudgetUpload {
    inner: Box<dyn MultipartUpload>,
    budget: Arc<IoBudget>,
}

#[async_trait]
impl MultipartUpload for BudgetUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        let part = self.inner.put_part(data);
        let budget = Arc::clone(&self.budget);
        Box::pin(async move {
            let _permit = budget.acquire_object(len).await;
            part.await
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let _permit = self.budget.acquire_object(0).await;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        let _permit = self.budget.acquire_object(0).await;
        self.inner.abort().await
    }
}
