// Icons and wording shared by the panel (consent.js) and the banner (banner.js).

export const SCREEN = 'M4 4h16a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zM8 20h8M12 16v4';
export const EYE = 'M2 12s3.6-7 10-7 10 7 10 7-3.6 7-10 7S2 12 2 12zM12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z';
export const LOCK = 'M7 11V7a5 5 0 0 1 10 0v4M6 11h12a1 1 0 0 1 1 1v8a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1v-8a1 1 0 0 1 1-1z';
export const STOP = 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM9.5 9.5h5v5h-5z';
export const INFO = 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM12 11v5M12 7.8h.01';
export const CLOSE = 'M6 6l12 12M18 6 6 18';
export const CHEVRON_UP = 'M6 15l6-6 6 6';
export const CHEVRON_DOWN = 'M6 9l6 6 6-6';

// "Anna (support)", "Ben (support supervisor)"
export function viewerName(v) {
  const who = String((v && v.name) || '').trim() || 'Someone';
  return who + ' (' + (v && v.role == 'supervisor' ? 'support supervisor' : 'support') + ')';
}

// "Anna (support) is viewing this page", "Anna (support) and Ben (support) are ..."
export function viewingText(viewers) {
  const names = viewers.map(viewerName);
  const last = names.pop();
  const list = names.length ? names.join(', ') + ' and ' + last : last;
  return list + (names.length ? ' are' : ' is') + ' viewing this page';
}
