// Drives the real dynamics-web-api client (pinned in package.json) against a running
// MailSignal and prints one JSON object: {step: {ok, value} | {ok: false, error}}.
// tests/web/test_real_clients.py starts the server, runs this and asserts on the output.
// Env: MAILSIGNAL_URL (server root), MAILSIGNAL_KEY (an admin's API key),
// MAILSIGNAL_FETCHXML (path of the seed view's FetchXML).
import { readFileSync } from "node:fs";
import { DynamicsWebApi } from "dynamics-web-api";

const key = process.env.MAILSIGNAL_KEY;
const api = new DynamicsWebApi({
  serverUrl: process.env.MAILSIGNAL_URL,
  dataApi: { version: "9.2" },
  onTokenRefresh: async () => key,
});
const seedFetch = readFileSync(process.env.MAILSIGNAL_FETCHXML, "utf8").replace(/<!--[\s\S]*?-->/g, "").trim();
const results = {};

async function step(name, fn) {
  try {
    results[name] = { ok: true, value: await fn() };
  } catch (error) {
    results[name] = {
      ok: false,
      error: { message: String(error?.message ?? error), status: error?.status ?? null, code: error?.code ?? null },
    };
  }
}

const allEmails = `<fetch count="2"><entity name="email"><attribute name="activityid"/><attribute name="subject"/><order attribute="subject"/></entity></fetch>`;
// Far longer than a URL may carry (the client switches to $batch past 2,000 characters).
const padding = Array.from({ length: 80 }, (_, i) => `<condition attribute="subject" operator="ne" value="padding-${i}"/>`).join("");
const longFetch = `<fetch><entity name="email"><attribute name="subject"/><filter type="and">${padding}</filter></entity></fetch>`;

await step("whoAmI", () => api.callFunction("WhoAmI"));
await step("retrieveMultiple", () =>
  api.retrieveMultiple({
    collection: "emails",
    select: ["subject", "opencount", "_regardingobjectid_value"],
    filter: "opencount gt 0 and contains(subject,'logistics')",
    orderBy: ["subject desc"],
    top: 5,
  }));
await step("retrieveMultipleExpand", () =>
  api.retrieveMultiple({
    collection: "contacts",
    select: ["fullname", "emailaddress1"],
    expand: [{ property: "parentcustomerid_account", select: ["name"] }],
    filter: "emailaddress1 ne null",
  }));
await step("count", () => api.count({ collection: "emails" }));
await step("retrieveMultiplePage", () => api.retrieveMultiple({ collection: "emails", select: ["subject"], maxPageSize: 2 }));
await step("retrieveAll", () => api.retrieveAll({ collection: "emails", select: ["subject"], maxPageSize: 2 }));
// As Dataverse, the paging cookie comes only when asked for (the client's documented usage).
const cookie = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie";
await step("fetchFirstPage", () => api.fetch({ collection: "emails", fetchXml: allEmails, includeAnnotations: cookie }));
await step("fetchAll", () => api.fetchAll({ collection: "emails", fetchXml: allEmails, includeAnnotations: cookie }));
await step("seedFetchXml", () => api.fetch({ collection: "emails", fetchXml: seedFetch }));
await step("longFetchXmlViaBatch", () => api.fetch({ collection: "emails", fetchXml: longFetch }));

// retrieve / update with ETags on a contact (emails are read-only over the Web API).
const contacts = await api.retrieveMultiple({ collection: "contacts", select: ["fullname"], top: 1 }).catch(() => ({ value: [] }));
const contactId = contacts.value[0]?.contactid;
let etag = null;
await step("retrieve", async () => {
  const record = await api.retrieve({ collection: "contacts", key: contactId, select: ["fullname", "emailaddress1"] });
  etag = record["@odata.etag"];
  return record;
});
await step("updateIfMatch", () =>
  api.update({ collection: "contacts", key: contactId, data: { fullname: "Renamed By Client" }, ifmatch: etag }));
await step("updateStaleEtag", () =>
  api.update({ collection: "contacts", key: contactId, data: { fullname: "Should Not Land" }, ifmatch: etag }));
await step("retrieveAfterUpdate", () => api.retrieve({ collection: "contacts", key: contactId, select: ["fullname"] }));

// The published "opt in on user creation" flow: PATCH the user's usersettings.
const me = results.whoAmI.ok ? results.whoAmI.value.UserId : null;
await step("optInPatch", () =>
  api.update({ collection: "usersettingscollection", key: me, data: { emailengagementoptin: true } }));
await step("optInAliasPatch", () =>
  api.update({ collection: "usersettingscollection", key: me, data: { allowemailcredentials: true } }));
await step("optInRead", () =>
  api.retrieve({ collection: "usersettingscollection", key: me, select: ["emailengagementoptin", "allowemailcredentials"] }));

await step("batch", async () => {
  api.startBatch();
  api.retrieveMultiple({ collection: "emails", select: ["subject"], top: 2 });
  api.update({ collection: "contacts", key: contactId, data: { followemail: true } });
  api.retrieve({ collection: "contacts", key: contactId, select: ["fullname", "followemail"] });
  return api.executeBatch();
});

await step("retrieveEntities", () =>
  api.retrieveEntities({ select: ["LogicalName", "EntitySetName", "PrimaryIdAttribute"], filter: "LogicalName eq 'contact'" }));
await step("retrieveEntity", () => api.retrieveEntity({ key: "LogicalName='email'", select: ["LogicalName", "EntitySetName"] }));
await step("retrieveAttributes", () => api.retrieveAttributes({ entityKey: "LogicalName='contact'", select: ["LogicalName", "AttributeType"] }));
await step("retrieveAttribute", () => api.retrieveAttribute({ entityKey: "LogicalName='email'", attributeKey: "LogicalName='opencount'" }));
await step("retrievePicklists", () =>
  api.retrieveAttributes({
    entityKey: "LogicalName='interactionforemail'",
    castType: "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
    select: ["LogicalName"],
    expand: [{ property: "OptionSet" }],
  }));
await step("csdlMetadata", async () => (await api.retrieveCsdlMetadata()).slice(0, 200));

process.stdout.write(JSON.stringify(results, null, 1) + "\n");
