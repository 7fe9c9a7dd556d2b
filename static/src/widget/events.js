// A minimal event hub the widget's feature modules talk through.
export function hub() {
  const handlers = {};
  return {
    on(type, fn) {
      (handlers[type] = handlers[type] || []).push(fn);
      return () => (handlers[type] = handlers[type].filter((f) => f !== fn));
    },
    emit(type, data) {
      for (const fn of handlers[type] || []) {
        try {
          fn(data);
        } catch (e) {
          // one broken feature must not take the others down
          console.error('cobrowse:', e);
        }
      }
    },
  };
}
