// Pages for a route that leads nowhere: an unknown address is "not found" (never the board, which would hide the
// mistake), and a page this role may not use is "not allowed" (the server refuses it anyway: this only says so).
import { h } from './dom.js';

export function notFoundView(root: HTMLElement, hash: string): () => void {
  root.append(h('section', { class: 'panel page-message', 'data-page': 'not-found' },
    h('h1', null, 'Page not found'),
    h('p', null, 'There is no page at ', h('code', { class: 'mono' }, hash || '#/'), '. The link may be mistyped or out of date.'),
    h('p', null, h('a', { class: 'button primary', href: '#/board' }, 'Back to the alarm board'))));
  return () => undefined;
}

export function notAllowedView(root: HTMLElement, what: string, who: string): () => void {
  root.append(h('section', { class: 'panel page-message', 'data-page': 'not-allowed' },
    h('h1', null, 'Not allowed'),
    h('p', null, `${what} is for administrators; you are logged in as ${who}. Ask an administrator if you need a change made.`),
    h('p', null, h('a', { class: 'button primary', href: '#/board' }, 'Back to the alarm board'))));
  return () => undefined;
}
