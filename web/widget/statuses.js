// A comment's statuses as the server names them ({APPROVED: "approved", …}). The one copy is
// db.models.Status: server/http/widget.py fills it in here when it assembles the bundle.
export const STATUS = Object.freeze(/*kibitz:statuses*/{});
