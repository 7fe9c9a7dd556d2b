// The workspace's side columns fold away so the visitor's page gets the room.
//
// On a laptop, the list of visitors, the chat and the session's details left
// the mirrored page a third of the screen: a 1280-pixel-wide visitor shown at
// 26-29%, too small to read. So:
//
//   - the list (left) folds to a narrow rail that keeps its counts (chats
//     offered, visitors waiting), so nothing arriving goes unseen. The topbar's
//     button and the rail's own button fold and unfold it.
//   - the details (right: control, commands, who watches) fold away with the
//     session bar's "Details" button.
//
// Until the agent chooses, the list folds by itself while a shared page is on
// screen in a window narrower than AUTO_FOLD_BELOW, and comes back when the page
// closes. Once the agent folds or unfolds a column, that choice is kept (in this
// browser) and nothing folds by itself any more.
import { icon } from './dom.js';

const AUTO_FOLD_BELOW = 1680; // px of window width; at 1680 the page still gets about 800 px beside a chat
const STORE_KEY = 'cobrowse.console.layout';
const PANEL_ICON = ['M4 4h16a1 1 0 0 1 1 1v14a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1z', 'M9 4v16'];

function loadChoices() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) || '{}');
    return saved && typeof saved == 'object' ? saved : {};
  } catch {
    return {}; // storage off or garbled: start from the defaults
  }
}

export class WorkspaceLayout {
  // els: workspace, session (the shared view, hidden when none), queueToggle, rail, railOpen,
  //      railOffers, railWaiting, offersCount, offersSection, queueCount, infoToggle
  constructor(els) {
    this.els = els;
    this.choices = loadChoices(); // {queue: 'open' | 'folded', info: 'open' | 'folded'}
    els.queueToggle.append(icon(...PANEL_ICON));
    els.queueToggle.addEventListener('click', () => this.choose('queue', this.queueFolded ? 'open' : 'folded'));
    els.railOpen.addEventListener('click', () => this.choose('queue', 'open'));
    els.infoToggle.addEventListener('click', () => this.choose('info', this.infoFolded ? 'open' : 'folded'));
    // The rail mirrors the list's counts; the list's own code keeps owning them.
    const mirror = new MutationObserver(() => this.renderRail());
    for (const el of [els.offersCount, els.queueCount, els.offersSection]) {
      mirror.observe(el, { childList: true, characterData: true, subtree: true, attributes: true, attributeFilter: ['hidden'] });
    }
    new MutationObserver(() => this.apply()).observe(els.session, { attributes: true, attributeFilter: ['hidden'] });
    addEventListener('resize', () => this.apply());
    this.apply();
  }

  get sharedPageShown() {
    return !this.els.session.hidden;
  }

  choose(column, state) {
    this.choices = { ...this.choices, [column]: state };
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(this.choices));
    } catch {
      // not kept across reloads; it still applies now
    }
    this.apply();
    if (column == 'queue' && state == 'open') this.els.queueToggle.focus();
  }

  apply() {
    const { workspace, queueToggle, infoToggle } = this.els;
    const queue = this.choices.queue;
    this.queueFolded = queue ? queue == 'folded' : this.sharedPageShown && innerWidth < AUTO_FOLD_BELOW;
    this.infoFolded = this.choices.info == 'folded';
    workspace.classList.toggle('queue-folded', this.queueFolded);
    workspace.classList.toggle('info-folded', this.infoFolded);
    queueToggle.setAttribute('aria-expanded', String(!this.queueFolded));
    queueToggle.setAttribute('aria-label', this.queueFolded ? 'Show the list of visitors' : 'Hide the list of visitors');
    queueToggle.title = queueToggle.getAttribute('aria-label');
    infoToggle.setAttribute('aria-expanded', String(!this.infoFolded));
    infoToggle.title = this.infoFolded ? 'Show the session’s details: control, commands, who is watching' : 'Hide the session’s details';
    this.renderRail();
  }

  renderRail() {
    const { rail, railOffers, railOffersItem, railWaiting, offersCount, offersSection, queueCount } = this.els;
    rail.hidden = !this.queueFolded;
    const offered = offersSection.hidden ? 0 : Number(offersCount.textContent) || 0;
    const waiting = Number(queueCount.textContent) || 0;
    railOffers.textContent = String(offered);
    railOffersItem.hidden = !offered;
    railWaiting.textContent = String(waiting);
    const parts = [offered ? `${offered} chat${offered == 1 ? '' : 's'} offered` : '', `${waiting} waiting`].filter(Boolean);
    this.els.railOpen.setAttribute('aria-label', `Show the list of visitors (${parts.join(', ')})`);
    this.els.railOpen.title = this.els.railOpen.getAttribute('aria-label');
  }
}
