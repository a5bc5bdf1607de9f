// Keeps a rendered thread in step with the live channel: the one piece of behaviour the
// widget and kibitz's own post page share beyond rendering. New and approved comments appear
// in place, marked new, and are announced through a polite live region (batched, so a burst
// is one announcement); focus never moves. "k reading now" follows presence.
import { connectLive } from "./live.js";

// With pages (``pager``), a new top-level comment appears at once only where it belongs among
// the loaded ones; otherwise the pager holds it behind a polite "N new comments" button.
// Replies appear under a loaded parent (an unloaded one brings them with its page).
export function follow({ liveUrl, uri, cursor, view, api, t, announcer, presence, pager }) {
  let heard = [];
  let timer = 0;
  const announce = (li) => {
    const author = li.querySelector(".comment__author");
    heard.push(author ? author.textContent.trim() : "");
    clearTimeout(timer);
    timer = setTimeout(() => {
      announcer.textContent = heard.length === 1
        ? t("New comment by %(author)s", { author: heard[0] })
        : t.n("%(count)s new comment", "%(count)s new comments", heard.length);
      heard = [];
    }, 400);
  };
  const showPresence = (online) => {
    if (!presence) return;
    presence.textContent = t.n("%(count)s reading now", "%(count)s reading now", online);
    presence.hidden = !(online > 0);
  };
  return connectLive({
    url: liveUrl, uri, cursor,
    onEvent(event) {
      if (pager && (event.type === "thread.closed" || event.type === "thread.opened")) {
        pager.setClosed(event.type === "thread.closed");
      } else if (event.type === "comment.created" || event.type === "comment.approved") {
        if (pager && !view.get(event.comment.id) && !pager.admit(event.comment)) return;
        const li = view.place(event.comment);
        if (li) {
          li.classList.add("comment--new");
          announce(li);
        }
      } else if (event.type === "comment.updated") {
        view.update(event.comment);
      } else if (event.type === "comment.deleted") {
        view.remove(event.id);
      }
    },
    onPresence: showPresence,
    onVotes(votes) {
      for (const [id, [up, down]] of Object.entries(votes)) view.setVotes(Number(id), up, down);
    },
    async onReset() {
      if (pager) return pager.reorder(view.sort);
      const thread = await api.thread(uri);
      view.render(thread.comments);
      return thread.cursor;
    },
    onState(connected) {
      if (!connected && presence) presence.hidden = true;
    },
  });
}
