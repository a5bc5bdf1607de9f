// The live channel (contract: "Live channel"). One socket per thread; `cursor` is the seq of
// the last event applied, so a reconnect asks for `since=cursor` and the server replays what
// was missed. Events at or below the cursor are dropped: nothing is applied twice.
//
// Reconnects back off exponentially with full jitter (1 s … 30 s) so a restarted server is not
// stormed by every reader at once; close code 4000 ("resume": our queue overflowed) reconnects
// at once. `reset` means our cursor is older than the events kept: the caller reloads the
// thread and hands back the new cursor, and we subscribe again from there.
const RESUME = 4000;
const MAX_DELAY = 30000;

export function connectLive({ url, uri, cursor, onEvent, onPresence, onReset, onState, onVotes }) {
  let socket = null;
  let attempt = 0;
  let timer = 0;
  let stopped = false;

  function open() {
    clearTimeout(timer);
    timer = 0;
    if (stopped || socket) return;
    const address = new URL(url);
    address.searchParams.set("uri", uri);
    if (cursor != null) address.searchParams.set("since", String(cursor));
    let ws;
    try {
      ws = new WebSocket(address.href);
    } catch {
      schedule(false);
      return;
    }
    socket = ws;
    ws.onmessage = (message) => {
      if (socket !== ws) return;
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      receive(ws, data);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      onState(false);
      schedule(event.code === RESUME);
    };
  }

  function receive(ws, data) {
    if (data.type === "hello") {
      attempt = 0;
      onState(true);
      onPresence(data.online);
    } else if (data.type === "presence") {
      onPresence(data.online);
    } else if (data.type === "votes") {
      if (onVotes) onVotes(data.votes); // counts, not stored: no seq

    } else if (data.type === "reset") {
      socket = null;
      ws.close(1000);
      onState(false);
      Promise.resolve(onReset()).then(
        (fresh) => { cursor = fresh; attempt = 0; open(); },
        () => schedule(false));
    } else if (typeof data.seq === "number") {
      if (cursor != null && data.seq <= cursor) return;
      cursor = data.seq;
      onEvent(data);
    }
  }

  function schedule(now) {
    if (stopped || timer) return;
    const ceiling = Math.min(MAX_DELAY, 1000 * 2 ** attempt);
    attempt += 1;
    timer = setTimeout(open, now ? Math.random() * 250 : ceiling / 2 + Math.random() * ceiling / 2);
  }

  // Coming back online or to the tab: try at once instead of waiting out the backoff.
  const retryNow = () => { if (!socket && !stopped) open(); };
  addEventListener("online", retryNow);
  open();
  return {
    get cursor() { return cursor; },
    // A comment we posted ourselves may arrive later as an event; the view dedupes by id.
    close() {
      stopped = true;
      clearTimeout(timer);
      removeEventListener("online", retryNow);
      if (socket) { const ws = socket; socket = null; ws.close(1000); }
    },
  };
}
