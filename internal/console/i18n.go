package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

var funcs = template.FuncMap{
	"t":     tr,
	"euro":  euro,
	"rome":  romeTime,
	"date":  italianDate,
	"add":   func(a, b int) int { return a + b },
	"state": func(lang string, s any) string { return tr(lang, "state_"+fmt.Sprint(s)) },
	"join":  strings.Join,
	"lower": strings.ToLower,
	"why":   why,
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
}

// romeTime shows an instant in Europe/Rome, to the minute ("—" if zero).
func romeTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(rcv.Rome).Format("02/01/2006 15:04")
}

// italianDate shows a civil date as DD/MM/YYYY ("—" if zero).
func italianDate(d rcv.Date) string {
	if d.IsZero() {
		return "—"
	}
	return fmt.Sprintf("%02d/%02d/%04d", d.Day, d.Month, d.Year)
}

// tr is the console's text in Italian (default) or English.
func tr(lang, key string) string {
	if m, ok := texts[key]; ok {
		if lang == "en" {
			return m[1]
		}
		return m[0]
	}
	return key
}

var texts = map[string][2]string{
	"title":            {"Incasso — console crediti", "Incasso — credit console"},
	"nav_queue":        {"Da fare oggi", "Today's work"},
	"nav_cases":        {"Pratiche", "Cases"},
	"nav_reports":      {"Andamento", "Reports"},
	"signout":          {"Esci", "Sign out"},
	"signin":           {"Accedi", "Sign in"},
	"signin_intro":     {"Accedi con il tuo token personale (dunning operators add lo crea).", "Sign in with your personal token (dunning operators add creates it)."},
	"token":            {"Token personale", "Personal token"},
	"your_name":        {"Il tuo nome (solo con il token condiviso)", "Your name (shared token only)"},
	"bad_token":        {"Token non valido o revocato.", "Invalid or revoked token."},
	"need_name":        {"Con il token condiviso scrivi il tuo nome: resta nel registro delle azioni.", "With the shared token, give your name: it is recorded with every action."},
	"queue_empty":      {"Nulla da fare: nessuna approvazione, nessun invio da verificare.", "Nothing to do: no approvals, no deliveries to check."},
	"approvals":        {"Da approvare", "Waiting for approval"},
	"approvals_intro":  {"Diffide, affidi al recupero e solleciti arretrati: nulla parte senza una persona.", "Formal notices, hand-offs and catch-up reminders: nothing goes without a person."},
	"to_check":         {"Invii da verificare", "Deliveries to check"},
	"to_check_intro":   {"Possibile invio o invio fallito: verifica con il cliente prima di rimandare.", "Possibly sent or failed: check with the client before sending again."},
	"held":             {"Sospese per cancellazione", "Held deletions"},
	"held_intro":       {"Fatture cancellate o annullate in Fatture in Cloud: decidi se chiudere o riprendere.", "Invoices deleted or voided in Fatture in Cloud: close or resume."},
	"disputes":         {"Contestazioni", "Disputes"},
	"promises":         {"Promesse scadute", "Promises due"},
	"client":           {"Cliente", "Client"},
	"invoice":          {"Fattura", "Invoice"},
	"company":          {"Azienda", "Company"},
	"stage":            {"Fase", "Stage"},
	"why":              {"Motivo", "Why"},
	"since":            {"Dal", "Since"},
	"days_late":        {"Giorni di ritardo", "Days late"},
	"due":              {"Da incassare", "Due"},
	"outstanding":      {"Residuo", "Outstanding"},
	"read_letter":      {"Leggi la lettera", "Read the letter"},
	"approve":          {"Approva", "Approve"},
	"reject":           {"Rifiuta", "Reject"},
	"postpone":         {"Rimanda al", "Postpone to"},
	"reason":           {"Motivo", "Reason"},
	"resolve":          {"Risolto", "Resolved"},
	"outcome":          {"Esito della verifica", "What you found"},
	"resume":           {"Riprendi", "Resume"},
	"writeoff":         {"Stralcia", "Write off"},
	"filters":          {"Filtri", "Filters"},
	"all":              {"tutte", "all"},
	"state":            {"Stato", "State"},
	"next_stage":       {"Prossima fase", "Next stage"},
	"next_action":      {"Prossima azione", "Next action"},
	"min_days":         {"Ritardo minimo (giorni)", "At least days late"},
	"min_amount":       {"Importo minimo (€)", "At least (€)"},
	"next_before":      {"Prossima azione prima del", "Next action before"},
	"assignee":         {"Assegnata a", "Assigned to"},
	"sort":             {"Ordina per", "Sort by"},
	"sort_days":        {"ritardo", "days late"},
	"sort_amount":      {"importo", "amount"},
	"sort_next":        {"prossima azione", "next action"},
	"sort_client":      {"cliente", "client"},
	"apply":            {"Applica", "Apply"},
	"export_csv":       {"Esporta CSV", "Export CSV"},
	"total":            {"Totale", "Total"},
	"cases_count":      {"pratiche", "cases"},
	"select":           {"Seleziona", "Select"},
	"bulk":             {"Azione sulle selezionate", "Action on the selected"},
	"bulk_pause":       {"sospendi fino al", "pause until"},
	"bulk_resume":      {"riprendi", "resume"},
	"bulk_remind":      {"sollecita ora (fase successiva)", "remind now (next stage)"},
	"bulk_assign":      {"assegna a", "assign to"},
	"run":              {"Esegui", "Run"},
	"until":            {"Fino al", "Until"},
	"installments":     {"Rate", "Installments"},
	"due_date":         {"Scadenza", "Due date"},
	"amount":           {"Importo", "Amount"},
	"status":           {"Stato", "Status"},
	"timeline":         {"Cronologia", "Timeline"},
	"when":             {"Quando", "When"},
	"action":           {"Azione", "Action"},
	"operator":         {"Operatore", "Operator"},
	"channel":          {"Canale", "Channel"},
	"sent":             {"Invii", "Deliveries"},
	"to":               {"A", "To"},
	"actions":          {"Azioni", "Actions"},
	"pause":            {"Sospendi fino al", "Pause until"},
	"promise":          {"Promessa di pagamento entro il", "Promise to pay by"},
	"dispute":          {"Contestata", "Disputed"},
	"remind_now":       {"Sollecita ora", "Remind now"},
	"note":             {"Nota", "Note"},
	"add_note":         {"Aggiungi nota", "Add note"},
	"assign":           {"Assegna a", "Assign to"},
	"pause_client":     {"Sospendi tutto il cliente fino al", "Pause the whole client until"},
	"pause_client_btn": {"Sospendi il cliente", "Pause the client"},
	"client_page":      {"Scheda cliente", "Client"},
	"contacts":         {"Recapiti", "Contacts"},
	"letter_of":        {"Lettera", "Letter"},
	"subject":          {"Oggetto", "Subject"},
	"text_version":     {"Versione testo", "Text version"},
	"letter_archived":  {"La lettera come è stata inviata, il", "The letter as it was sent, on"},
	"letter_draft":     {"Anteprima: la lettera come partirebbe oggi (nulla è stato inviato).", "Preview: the letter as it would go today (nothing was sent)."},
	"back_case":        {"Torna alla pratica", "Back to the case"},
	"reports":          {"Andamento crediti", "Receivables"},
	"aging_chart":      {"Scaduto per fascia", "Aging buckets"},
	"dso_chart":        {"DSO (giorni) a fine mese", "DSO (days) at month end"},
	"calendar":         {"Invii dei prossimi 14 giorni", "What goes out in the next 14 days"},
	"messages":         {"messaggi", "messages"},
	"open":             {"Aperto", "Open"},
	"dso":              {"DSO", "DSO"},
	"nothing":          {"nessun invio", "nothing"},
	"error":            {"Errore", "Error"},
	"state_active":     {"attiva", "active"},
	"state_escalated":  {"affidata", "escalated"},
	"state_paused":     {"sospesa", "paused"},
	"state_disputed":   {"contestata", "disputed"},
	"state_promised":   {"promessa", "promised"},
	"state_held":       {"sospesa (cancellata in FIC)", "held (deleted in FIC)"},
	"state_closed":     {"chiusa", "closed"},
	"formal":           {"passo formale", "formal step"},
	"lang_other":       {"English", "Italiano"},
	"skip":             {"Vai al contenuto", "Skip to content"},
	"signed_in_as":     {"Accesso come", "Signed in as"},
	"waits_approval":   {"in attesa di approvazione", "waits for approval"},
	"show":             {"Apri", "Open"},
	"what_goes_out":    {"cosa parte", "what goes out"},
	"approval_reason":  {"Motivo dell'attesa", "Why it waits"},
	"amount_due_total": {"Importo da incassare", "Amount due"},
}

// why translates the engine's reasons for an approval.
func why(lang, reason string) string {
	if lang == "en" {
		return reason
	}
	for _, r := range [][2]string{
		{"catch-up: the invoice was already late when the case opened", "arretrato: la fattura era già scaduta all'apertura della pratica"},
		{"formal step", "passo formale: serve l'approvazione di una persona"},
	} {
		if strings.HasPrefix(reason, r[0]) {
			return r[1] + strings.TrimPrefix(reason, r[0])
		}
	}
	return reason
}
