// Department names. Chats, offers and left messages carry a department's id
// ("billing", as configured in [[department]]); agents read its name
// ("Billing and refunds"). The names come from GET /api/chat/agents once the
// agent is in; until then, and for a department no longer configured, the id
// is shown as it is.

const names = new Map();

export function departmentName(id) {
  if (!id) return '';
  return names.get(String(id)) || String(id);
}

// list: [{id, name}]. Returns whether any name changed (the caller re-renders then).
export function learnDepartments(list) {
  let changed = false;
  for (const d of list || []) {
    if (!d || d.id == null) continue;
    const id = String(d.id);
    const name = String(d.name || id);
    if (names.get(id) !== name) {
      names.set(id, name);
      changed = true;
    }
  }
  return changed;
}

// [{id, name}] of every department learnt, for pickers.
export function knownDepartments() {
  return [...names].map(([id, name]) => ({ id, name }));
}
