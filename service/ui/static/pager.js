// The links of a list read in cursor pages (the jobs and the sweeps lists): "← newest",
// "← newer" (from the third page on; on the second it is the newest) and "older →".
// The API's cursor only reads onwards (each page's next_cursor), so the cursors of the
// pages before this one travel in the page's own URL as `back` (each URI-encoded,
// comma-separated, "" for the newest page): a reload, a shared link and the browser's
// Back keep them.
import { el } from "./dom.js";

export function backStack(params) {
  return params.back === undefined || !params.cursor ? []
    : params.back.split(",").map(decodeURIComponent);
}

// `route`: "jobs" or "sweeps"; `params`: the page's URL parameters; `ids`: the links'
// element ids ({ newest, newer, older }).
export function pagerLinks(route, params, nextCursor, ids) {
  const base = new URLSearchParams(params);
  base.delete("cursor");
  base.delete("back");
  const href = (cursor, stack) => {
    const query = new URLSearchParams(base);
    if (cursor) {
      query.set("cursor", cursor);
      query.set("back", stack.map(encodeURIComponent).join(","));
    }
    return `#/${route}?${query}`;
  };
  const back = backStack(params);
  const links = [];
  if (params.cursor) {
    links.push(el("a", { href: href("", []), id: ids.newest }, "← newest"));
    if (back.length > 1) {
      links.push(el("a", { href: href(back[back.length - 1], back.slice(0, -1)), id: ids.newer },
        "← newer"));
    }
  }
  if (nextCursor) {
    links.push(el("a", { href: href(nextCursor, [...back, params.cursor || ""]), id: ids.older },
      "older →"));
  }
  return links;
}
