package ficsim

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Realistic Italian master data: names, cities, VAT numbers with a valid
// check digit and tax codes (codice fiscale) with a valid check character.

var (
	surnames = []string{"Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
		"Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti",
		"Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli", "Martini", "Leone"}
	firstNames = []string{"Marco", "Giulia", "Alessandro", "Francesca", "Luca", "Chiara", "Matteo", "Sara", "Lorenzo", "Valentina",
		"Andrea", "Elena", "Davide", "Martina", "Stefano", "Federica", "Paolo", "Silvia", "Giovanni", "Anna"}
	businessWords = []string{"Edilizia", "Trasporti", "Meccanica", "Alimentari", "Tessile", "Informatica", "Impianti", "Logistica",
		"Arredamenti", "Ceramiche", "Vini", "Consulting", "Serramenti", "Elettronica", "Ristorazione", "Grafica"}
	legalForms = []string{"S.r.l.", "S.p.A.", "S.n.c.", "S.a.s.", "S.r.l.s."}
	cities     = []struct{ name, prov, cap, code string }{
		{"Milano", "MI", "20121", "F205"}, {"Roma", "RM", "00184", "H501"}, {"Torino", "TO", "10121", "L219"},
		{"Napoli", "NA", "80133", "F839"}, {"Bologna", "BO", "40121", "A944"}, {"Firenze", "FI", "50123", "D612"},
		{"Bergamo", "BG", "24121", "A794"}, {"Verona", "VR", "37121", "L781"}, {"Padova", "PD", "35122", "G224"},
		{"Bari", "BA", "70121", "A662"}, {"Brescia", "BS", "25121", "B157"}, {"Genova", "GE", "16121", "D969"},
	}
	streets = []string{"Via Roma", "Via Garibaldi", "Corso Italia", "Via Mazzini", "Via Dante", "Viale Europa", "Via Verdi", "Piazza Duomo"}
	paNames = []string{"Comune di %s", "Azienda Sanitaria Locale di %s", "Istituto Comprensivo di %s"}
)

// vatCheckDigit computes the Italian partita IVA check digit of 10 digits.
func vatCheckDigit(d string) byte {
	sum := 0
	for i := 0; i < 10; i++ {
		n := int(d[i] - '0')
		if i%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return byte('0' + (10-sum%10)%10)
}

// ValidVATNumber reports whether s is 11 digits with a correct check digit.
func ValidVATNumber(s string) bool {
	if len(s) != 11 {
		return false
	}
	for i := 0; i < 11; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return vatCheckDigit(s) == s[10]
}

func randomVAT(r *rand.Rand) string {
	var b strings.Builder
	for i := 0; i < 7; i++ { // company serial
		b.WriteByte(byte('0' + r.IntN(10)))
	}
	fmt.Fprintf(&b, "%03d", 1+r.IntN(100)) // office code
	s := b.String()
	return s + string(vatCheckDigit(s))
}

var cfOdd = map[byte]int{
	'0': 1, '1': 0, '2': 5, '3': 7, '4': 9, '5': 13, '6': 15, '7': 17, '8': 19, '9': 21,
	'A': 1, 'B': 0, 'C': 5, 'D': 7, 'E': 9, 'F': 13, 'G': 15, 'H': 17, 'I': 19, 'J': 21, 'K': 2, 'L': 4, 'M': 18,
	'N': 20, 'O': 11, 'P': 3, 'Q': 6, 'R': 8, 'S': 12, 'T': 14, 'U': 16, 'V': 10, 'W': 22, 'X': 25, 'Y': 24, 'Z': 23,
}

func cfEven(c byte) int {
	if c >= '0' && c <= '9' {
		return int(c - '0')
	}
	return int(c - 'A')
}

// cfCheckChar computes the codice fiscale control character of 15 chars.
func cfCheckChar(s string) byte {
	sum := 0
	for i := 0; i < 15; i++ {
		if i%2 == 0 {
			sum += cfOdd[s[i]]
		} else {
			sum += cfEven(s[i])
		}
	}
	return byte('A' + sum%26)
}

// ValidTaxCode reports whether s is a 16-character codice fiscale with a
// correct control character (or an 11-digit VAT number, used by companies).
func ValidTaxCode(s string) bool {
	if len(s) == 11 {
		return ValidVATNumber(s)
	}
	if len(s) != 16 {
		return false
	}
	for i := 0; i < 16; i++ {
		if _, ok := cfOdd[s[i]]; !ok {
			return false
		}
	}
	return cfCheckChar(s) == s[15]
}

func splitLetters(s string) (cons, vows string) {
	for _, c := range strings.ToUpper(s) {
		switch {
		case strings.ContainsRune("AEIOU", c):
			vows += string(c)
		case c >= 'A' && c <= 'Z':
			cons += string(c)
		}
	}
	return
}

func cfPart(s string, isName bool) string {
	cons, vows := splitLetters(s)
	if isName && len(cons) >= 4 {
		return string([]byte{cons[0], cons[2], cons[3]})
	}
	return (cons + vows + "XXX")[:3]
}

func taxCode(r *rand.Rand, first, last string, female bool, cityCode string) string {
	months := "ABCDEHLMPRST"
	yy := 50 + r.IntN(50)
	day := 1 + r.IntN(28)
	if female {
		day += 40
	}
	s := cfPart(last, false) + cfPart(first, true) + fmt.Sprintf("%02d%c%02d", yy, months[r.IntN(12)], day) + cityCode
	return s + string(cfCheckChar(s))
}

func slug(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func randomClient(r *rand.Rand, id int64) Client {
	city := cities[r.IntN(len(cities))]
	c := Client{
		ID: id, Code: fmt.Sprintf("C%05d", id%100000), Country: "Italia", CountryISO: "IT",
		Street:     fmt.Sprintf("%s, %d", streets[r.IntN(len(streets))], 1+r.IntN(200)),
		PostalCode: city.cap, City: city.name, Province: city.prov, Language: "it",
		Phone: fmt.Sprintf("0%d %07d", 2+r.IntN(8), r.IntN(10000000)),
	}
	switch k := r.IntN(20); {
	case k < 14: // company
		c.Type = "company"
		c.Name = fmt.Sprintf("%s %s %s", surnames[r.IntN(len(surnames))], businessWords[r.IntN(len(businessWords))], legalForms[r.IntN(len(legalForms))])
		c.VATNumber = randomVAT(r)
		c.TaxCode = c.VATNumber
		c.Email = "amministrazione@" + slug(c.Name) + ".it"
		c.PEC = slug(c.Name) + "@pec.it"
		c.EICode = strings.ToUpper(fmt.Sprintf("%07x", r.Uint32()))[:7]
	case k < 17: // sole trader / professional
		c.Type = "person"
		c.FirstName = firstNames[r.IntN(len(firstNames))]
		c.LastName = surnames[r.IntN(len(surnames))]
		c.Name = c.FirstName + " " + c.LastName
		c.VATNumber = randomVAT(r)
		c.TaxCode = taxCode(r, c.FirstName, c.LastName, r.IntN(2) == 0, city.code)
		c.Email = strings.ToLower(slug(c.FirstName) + "." + slug(c.LastName) + "@example.it")
		c.PEC = strings.ToLower(slug(c.FirstName) + "." + slug(c.LastName) + "@pec.example.it")
		c.EICode = "0000000"
	case k < 19: // public administration: split payment
		c.Type = "pa"
		c.Name = fmt.Sprintf(paNames[r.IntN(len(paNames))], city.name)
		c.VATNumber = randomVAT(r)
		c.TaxCode = c.VATNumber
		c.Email = "ragioneria@" + slug(city.name) + ".gov.it"
		c.PEC = "protocollo@pec." + slug(city.name) + ".gov.it"
		c.EICode = strings.ToUpper(fmt.Sprintf("UF%04X", r.IntN(0xFFFF)))
	default: // foreign customer
		c.Type = "company"
		c.Name = fmt.Sprintf("%s Trading Ltd", surnames[r.IntN(len(surnames))])
		c.VATNumber = fmt.Sprintf("GB%09d", r.IntN(1000000000))
		c.Country, c.CountryISO = "Regno Unito", "GB"
		c.City, c.Province, c.PostalCode, c.Street = "London", "", "EC1A 1BB", "1 King Street"
		c.Email = "accounts@" + slug(c.Name) + ".co.uk"
		c.Language = "en"
		c.EICode = "XXXXXXX"
	}
	return c
}
