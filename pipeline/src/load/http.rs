//! A lean HTTP/1.1 client for plain `http://` targets: a pool of keep-alive connections per
//! authority, each checked out by one arrival's task for one request and response, its read
//! buffer reused. No connection task, no channels, no allocation per request beyond the task
//! (hyper's pooled client has all three; on loopback it halved omen's user CPU per request and
//! lifted its ceiling by a third: BENCHMARKS.md). HTTPS goes through hyper and rustls instead
//! (`engine`).
//!
//! Responses are framed by `Content-Length`, chunked transfer coding, or the connection's end;
//! `1xx` answers before the final one are skipped. A request on a reused connection that the
//! server closed before answering anything is retried on another, as hyper does.
//!
//! A pool holds at most `--connections` connections (per thread); an arrival that finds none
//! free and the pool full waits for one, its wait counted in its latency (from the intended
//! time) and its timeout.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::engine::ErrorKind;

/// Largest response head and body read.
const MAX_HEAD: usize = 64 << 10;
const MAX_BODY: usize = 64 << 20;

/// Connections being opened at once per authority: a burst of arrivals that finds no idle
/// connection mostly waits for one to come free rather than opening one each.
const MAX_CONNECTING: usize = 16;

/// A keep-alive connection, its read buffer, and its place in its pool's count.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    _ticket: Ticket,
}

/// The pools of every authority (`host:port`) a run talks to.
pub struct Pools {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    /// Connections per authority at most (open or opening).
    max_open: usize,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").field("max_open", &self.max_open).finish_non_exhaustive()
    }
}

/// A failure: its kind and message.
pub type Failure = (ErrorKind, String);

/// The connections to one authority.
struct Pool {
    state: Mutex<PoolState>,
    max_open: usize,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Conn>,
    /// Requests waiting for a connection, first come first served.
    waiters: VecDeque<oneshot::Sender<Token>>,
    /// Connections open or being opened.
    open: usize,
    /// Of those, being opened.
    connecting: usize,
}

/// What a waiting request is handed: a free connection, or the right to open one.
enum Token {
    Conn(Conn),
    Slot(Slot),
}

/// The right to open a connection (counted as open and connecting until dropped or used).
struct Slot(Option<Arc<Pool>>);

/// A live connection's place in the count (given back when the connection is dropped).
struct Ticket(Option<Arc<Pool>>);

impl Slot {
    /// The connect is over: no longer connecting; the connection keeps its place.
    fn connected(mut self) -> Ticket {
        let pool = self.0.take();
        if let Some(p) = &pool {
            let mut st = p.lock();
            st.connecting -= 1;
            p.dispatch(&mut st);
        }
        Ticket(pool)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let mut st = p.lock();
            st.connecting -= 1;
            st.open -= 1;
            p.dispatch(&mut st);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let mut st = p.lock();
            st.open -= 1;
            p.dispatch(&mut st);
        }
    }
}

enum Checkout {
    Conn(Conn),
    Connect(Slot),
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn may_open(&self, st: &PoolState) -> bool {
        st.open < self.max_open && st.connecting < MAX_CONNECTING
    }

    async fn checkout(self: &Arc<Self>) -> Checkout {
        let rx = {
            let mut st = self.lock();
            if let Some(c) = st.idle.pop() {
                return Checkout::Conn(c);
            }
            if self.may_open(&st) {
                st.open += 1;
                st.connecting += 1;
                return Checkout::Connect(Slot(Some(self.clone())));
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            rx
        };
        match rx.await {
            Ok(Token::Conn(c)) => Checkout::Conn(c),
            Ok(Token::Slot(s)) => Checkout::Connect(s),
            // The pool never drops a waiter unanswered; should it, open a connection anyway.
            Err(_) => {
                let mut st = self.lock();
                st.open += 1;
                st.connecting += 1;
                Checkout::Connect(Slot(Some(self.clone())))
            }
        }
    }

    /// Hands free connections, then rights to open one, to the waiters, first come first
    /// served. Called with the lock held; drops nothing that takes it.
    fn dispatch(self: &Arc<Self>, st: &mut PoolState) {
        while !st.waiters.is_empty() {
            let token = if let Some(c) = st.idle.pop() {
                Token::Conn(c)
            } else if self.may_open(st) {
                st.open += 1;
                st.connecting += 1;
                Token::Slot(Slot(Some(self.clone())))
            } else {
                return;
            };
            let Some(w) = st.waiters.pop_front() else { return };
            match w.send(token) {
                Ok(()) => {}
                // That waiter gave up (its deadline passed): take the token back.
                Err(Token::Conn(c)) => st.idle.push(c),
                Err(Token::Slot(mut s)) => {
                    s.0.take();
                    st.open -= 1;
                    st.connecting -= 1;
                }
            }
        }
    }

    /// A connection is free again.
    fn give(self: &Arc<Self>, conn: Conn) {
        let mut st = self.lock();
        st.idle.push(conn);
        self.dispatch(&mut st);
    }
}

impl Pools {
    /// Pools of at most `max_open` connections per authority.
    pub fn new(max_open: usize) -> Pools {
        Pools { pools: Mutex::new(HashMap::new()), max_open: max_open.max(1) }
    }

    /// Closes the idle connections (they hold their pool: a cycle until then).
    pub fn close(&self) {
        let pools: Vec<Arc<Pool>> = self.pools.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, p)| p).collect();
        for p in pools {
            let idle = std::mem::take(&mut p.lock().idle);
            drop(idle);
        }
    }

    fn pool(&self, authority: &str) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        match pools.get(authority) {
            Some(p) => p.clone(),
            None => pools
                .entry(authority.to_string())
                .or_insert_with(|| Arc::new(Pool { state: Mutex::default(), max_open: self.max_open }))
                .clone(),
        }
    }

    /// Sends `wire` (a whole request) to `authority` and reads the response. Returns the status
    /// and, with `want_body`, the body (decoded from chunks).
    pub async fn send(&self, authority: &str, wire: &[u8], head_only: bool, want_body: bool) -> Result<(u16, Bytes), Failure> {
        let pool = self.pool(authority);
        // A reused connection the server closed while idle is retried on another.
        for _ in 0..3 {
            let (mut conn, fresh) = match pool.checkout().await {
                Checkout::Conn(c) => (c, false),
                Checkout::Connect(slot) => {
                    let stream = TcpStream::connect(authority).await;
                    let stream = match stream {
                        Ok(s) => s,
                        Err(e) => {
                            drop(slot);
                            return Err((ErrorKind::Connect, format!("cannot connect to {authority}: {e}")));
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    (Conn { stream, buf: Vec::with_capacity(4096), _ticket: slot.connected() }, true)
                }
            };
            match exchange(&mut conn, wire, head_only, want_body).await {
                Ok((status, body, keep)) => {
                    if keep {
                        pool.give(conn);
                    }
                    return Ok((status, body));
                }
                Err(Exchange::ClosedBeforeAnswer) if !fresh => continue,
                Err(Exchange::ClosedBeforeAnswer) => {
                    return Err((ErrorKind::Io, format!("{authority}: connection closed before any response")));
                }
                Err(Exchange::Failed(kind, message)) => return Err((kind, format!("{authority}: {message}"))),
            }
        }
        Err((ErrorKind::Io, format!("{authority}: connections closed before any response")))
    }
}

enum Exchange {
    ClosedBeforeAnswer,
    Failed(ErrorKind, String),
}

fn io(message: impl Into<String>) -> Exchange {
    Exchange::Failed(ErrorKind::Io, message.into())
}

/// One request and its response on `conn`. Returns the status, the body (when wanted) and
/// whether the connection may be reused.
async fn exchange(conn: &mut Conn, wire: &[u8], head_only: bool, want_body: bool) -> Result<(u16, Bytes, bool), Exchange> {
    conn.buf.clear();
    if let Err(e) = conn.stream.write_all(wire).await {
        return Err(match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Exchange::ClosedBeforeAnswer,
            _ => io(format!("writing the request: {e}")),
        });
    }
    let mut received_any = false;
    loop {
        // The head.
        let (status, head_len, framing, close) = loop {
            if let Some(h) = parse_head(&conn.buf)? {
                break h;
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(io("response head over 64 KiB"));
            }
            if !fill(conn).await? {
                return Err(if received_any || !conn.buf.is_empty() {
                    io("connection closed in the middle of the response head")
                } else {
                    Exchange::ClosedBeforeAnswer
                });
            }
            received_any = true;
        };
        received_any = true;
        conn.buf.drain(..head_len);
        if (100..200).contains(&status) && status != 101 {
            continue; // an interim answer (100 Continue, 103 Early Hints)
        }
        let framing = if head_only || status == 204 || status == 304 { Framing::Length(0) } else { framing };
        let (body, eof) = read_body(conn, framing, want_body).await?;
        return Ok((status, body, !close && !eof));
    }
}

/// Reads more bytes into the buffer; `false` at the end of the stream.
async fn fill(conn: &mut Conn) -> Result<bool, Exchange> {
    if conn.buf.capacity() - conn.buf.len() < 2048 {
        conn.buf.reserve(8192);
    }
    match conn.stream.read_buf(&mut conn.buf).await {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(false),
        Err(e) => Err(io(format!("reading the response: {e}"))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// The status, head length, body framing and whether the server closes the connection.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize, Framing, bool)>, Exchange> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io(format!("malformed response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let mut close = resp.version == Some(0);
    let mut framing = Framing::UntilClose;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
            match len {
                Some(l) if framing != Framing::Chunked => framing = Framing::Length(l),
                Some(_) => {}
                None => return Err(io("malformed content-length")),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.split(|b| *b == b',').any(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked")) {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for v in h.value.split(|b| *b == b',') {
                let v = v.trim_ascii();
                if v.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if v.eq_ignore_ascii_case(b"keep-alive") && resp.version == Some(0) {
                    close = false;
                }
            }
        }
    }
    if framing == Framing::UntilClose {
        close = true;
    }
    Ok(Some((status, n, framing, close)))
}

/// Reads the body from the buffer and the stream. Returns it (when wanted) and whether the
/// stream ended.
async fn read_body(conn: &mut Conn, framing: Framing, want: bool) -> Result<(Bytes, bool), Exchange> {
    let mut body: Vec<u8> = Vec::new();
    let keep = |body: &mut Vec<u8>, bytes: &[u8]| -> Result<(), Exchange> {
        if want {
            if body.len() + bytes.len() > MAX_BODY {
                return Err(io("response body over 64 MiB"));
            }
            body.extend_from_slice(bytes);
        }
        Ok(())
    };
    match framing {
        Framing::Length(mut left) => {
            loop {
                let n = left.min(conn.buf.len());
                keep(&mut body, &conn.buf[..n])?;
                conn.buf.drain(..n);
                left -= n;
                if left == 0 {
                    break;
                }
                if !fill(conn).await? {
                    return Err(io("connection closed in the middle of the body"));
                }
            }
            if !conn.buf.is_empty() {
                return Err(io("bytes after the response (the server answered more than once)"));
            }
            Ok((Bytes::from(body), false))
        }
        Framing::UntilClose => {
            loop {
                keep(&mut body, &conn.buf)?;
                conn.buf.clear();
                if !fill(conn).await? {
                    break;
                }
            }
            Ok((Bytes::from(body), true))
        }
        Framing::Chunked => {
            loop {
                // The chunk-size line.
                let line_end = loop {
                    if let Some(i) = conn.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    if conn.buf.len() > 4096 {
                        return Err(io("malformed chunk size"));
                    }
                    if !fill(conn).await? {
                        return Err(io("connection closed in the middle of a chunked body"));
                    }
                };
                let line = std::str::from_utf8(&conn.buf[..line_end]).map_err(|_| io("malformed chunk size"))?;
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| io(format!("malformed chunk size `{line}`")))?;
                conn.buf.drain(..line_end + 2);
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        if let Some(i) = conn.buf.windows(2).position(|w| w == b"\r\n") {
                            conn.buf.drain(..i + 2);
                            if i == 0 {
                                return Ok((Bytes::from(body), false));
                            }
                            continue;
                        }
                        if conn.buf.len() > MAX_HEAD {
                            return Err(io("trailers over 64 KiB"));
                        }
                        if !fill(conn).await? {
                            return Err(io("connection closed in the trailers of a chunked body"));
                        }
                    }
                }
                let mut left = size + 2; // the data and its CRLF
                loop {
                    let n = left.min(conn.buf.len());
                    let data = n.min(left.saturating_sub(2).min(n));
                    keep(&mut body, &conn.buf[..data])?;
                    conn.buf.drain(..n);
                    left -= n;
                    if left == 0 {
                        break;
                    }
                    if !fill(conn).await? {
                        return Err(io("connection closed in the middle of a chunked body"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = |s: &str| match parse_head(s.as_bytes()) {
            Ok(Some((st, n, f, c))) => Some((st, n, f, c)),
            _ => None,
        };
        assert_eq!(h("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), Some((200, 38, Framing::Length(5), false)));
        assert_eq!(h("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").map(|x| x.2), Some(Framing::Chunked));
        assert_eq!(h("HTTP/1.1 200 OK\r\n\r\n").map(|x| (x.2, x.3)), Some((Framing::UntilClose, true)));
        assert_eq!(h("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").map(|x| x.3), Some(true));
        assert_eq!(h("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").map(|x| x.3), Some(false));
        assert_eq!(h("HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").map(|x| (x.0, x.3)), Some((503, true)));
        assert_eq!(h("HTTP/1.1 200 OK\r\nContent-Len"), None);
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    /// A server answering canned bytes on each connection, then closing.
    async fn canned(answers: Vec<&'static [u8]>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            for a in answers {
                let (mut s, _) = l.accept().await.unwrap();
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                s.write_all(a).await.unwrap();
                // Close (or leave open for keep-alive answers until the client closes).
                let _ = s.shutdown().await;
            }
        });
        addr
    }

    /// A keep-alive server answering every request with `ok`; counts its connections.
    async fn keep_alive_server(accepted: Arc<std::sync::atomic::AtomicUsize>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut req = vec![0u8; 4096];
                    loop {
                        let mut got = 0;
                        while !req[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut req[got..]).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got += n,
                            }
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_full_pool_makes_arrivals_wait() {
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let addr = keep_alive_server(accepted.clone()).await;
        let pools = Arc::new(Pools::new(2));
        let req: Arc<[u8]> = Arc::from(format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes());
        let t0 = std::time::Instant::now();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (pools, addr, req) = (pools.clone(), addr.clone(), req.clone());
                tokio::spawn(async move { pools.send(&addr, &req, false, true).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), (200, Bytes::from_static(b"ok")));
        }
        // Two connections, three rounds of 20 ms each.
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(t0.elapsed() >= std::time::Duration::from_millis(55), "{:?}", t0.elapsed());
        pools.close();
    }

    #[tokio::test]
    async fn framings() {
        let addr = canned(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"nonsense\r\n\r\n",
        ])
        .await;
        let pools = Pools::new(4);
        let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let get = |want| pools.send(&addr, req.as_bytes(), false, want);
        assert_eq!(get(true).await.unwrap(), (200, Bytes::from_static(b"hello")));
        // The server closed that connection after answering: the retry takes a new one.
        assert_eq!(get(true).await.unwrap(), (201, Bytes::from_static(b"abcde")));
        assert_eq!(get(true).await.unwrap(), (200, Bytes::from_static(b"until the end")));
        let e = get(false).await.unwrap_err();
        assert_eq!(e.0, ErrorKind::Io);
        assert!(e.1.contains("closed in the middle of the body"), "{}", e.1);
        let e = get(false).await.unwrap_err();
        assert!(e.1.contains("malformed response head"), "{}", e.1);
        // Nothing listens any more.
        let e = get(false).await.unwrap_err();
        assert_eq!(e.0, ErrorKind::Connect, "{e:?}");
        assert!(e.1.contains("cannot connect to 127.0.0.1:"), "{}", e.1);
    }
}
