package demo

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// Row counts at scale 1 and the shares that shape the data. Shares are in
// permille so the arithmetic stays in integers and exact across platforms.
const (
	residentsPerScale   = 20000
	enterprisesPerScale = 3000

	insuredPermille        = 700 // residents with basic medical insurance here
	healthExtraPermille    = 50  // insured people who are not residents, per resident
	householdExtraPermille = 30  // people registered with the police only, per resident
	residentRepPermille    = 600 // legal representatives who are residents
	extraRepReusePermille  = 150 // a non-resident representative of several enterprises
	residentMigrant        = 150 // residents flagged as migrants by the police
	extraMigrant           = 700 // non-residents registered with the police who are migrants
	extraRepInHousehold    = 800 // non-resident representatives living in the city
	healthExtraInHousehold = 300
)

// The data describe the city as of this date; they never depend on
// Options.Now, so regenerating next year gives the same databases.
var (
	dataAsOf    = time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)
	birthFirst  = time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC)
	birthLast   = time.Date(2005, 12, 31, 0, 0, 0, 0, time.UTC)
	repBornLast = time.Date(2000, 12, 31, 0, 0, 0, 0, time.UTC)
	firstFirm   = time.Date(1995, 1, 1, 0, 0, 0, 0, time.UTC)
	firstCrime  = time.Date(1995, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Random streams: each table draws from its own PCG stream of the seed, so a
// change to how one table is generated leaves the others' values alone.
const (
	streamPeople uint64 = iota + 1
	streamHealth
	streamMarket
	streamPolice // reserved: household rows are fully determined by the people
	streamCrime
	streamMental // health.insured.severe_mental_illness, drawn apart so older columns keep their values
)

// severeMentalPermille is the share of insured people under the severe
// mental disorder management register (about 0.6% in China's figures).
const severeMentalPermille = 6

type person struct {
	id, name, phone string
	birth           time.Time
	male            bool
	district        int // index into districts; where the person lives
	resident        bool
	chronic         bool
	lowIncome       bool
	allowance       float64
	inHousehold     bool
	householdDist   int
	migrant         bool
	inHealthExtra   bool
}

// tables holds the generated rows per dataset ("civil.residents"), each row in
// the column order of the catalog.
type tables map[string][][]any

type generator struct {
	ctx    context.Context
	seed   int64
	scale  int
	used   map[string]bool // every ID number handed out, across all people
	people []*person       // residents first, then non-residents in creation order
	nRes   int
	out    tables
}

func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}

// generateData builds every table of the demo world in memory.
func generateData(ctx context.Context, seed int64, scale int) (tables, error) {
	g := &generator{ctx: ctx, seed: seed, scale: scale, used: map[string]bool{}, out: tables{}}
	steps := []func() error{g.population, g.health, g.market, g.police, g.crime}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("demo: generating data: %w", err)
		}
		if err := step(); err != nil {
			return nil, err
		}
	}
	return g.out, nil
}

func pick(r *rand.Rand, ws []weighted) string {
	total := 0
	for _, w := range ws {
		total += w.weight
	}
	n := r.IntN(total)
	for _, w := range ws {
		if n < w.weight {
			return w.value
		}
		n -= w.weight
	}
	return ws[len(ws)-1].value
}

func pickDistrict(r *rand.Rand) int {
	total := 0
	for _, d := range districts {
		total += d.weight
	}
	n := r.IntN(total)
	for i, d := range districts {
		if n < d.weight {
			return i
		}
		n -= d.weight
	}
	return len(districts) - 1
}

func chance(r *rand.Rand, permille int) bool { return r.IntN(1000) < permille }

func dateBetween(r *rand.Rand, lo, hi time.Time) time.Time {
	days := int(hi.Sub(lo).Hours()/24) + 1
	return lo.AddDate(0, 0, r.IntN(days))
}

func cents(x float64) float64 { return math.Round(x*100) / 100 }

func age(birth time.Time) int {
	a := dataAsOf.Year() - birth.Year()
	if dataAsOf.YearDay() < birth.YearDay() {
		a--
	}
	return a
}

func chineseName(r *rand.Rand, male bool) string {
	var b strings.Builder
	b.WriteString(pick(r, surnames))
	given := givenFemale
	if male {
		given = givenMale
	}
	n := 1
	if chance(r, 700) {
		n = 2
	}
	for range n {
		b.WriteString(given[r.IntN(len(given))])
	}
	return b.String()
}

func phone(r *rand.Rand) string {
	return fmt.Sprintf("%s%08d", phonePrefixes[r.IntN(len(phonePrefixes))], r.IntN(100000000))
}

// newPerson draws a person with an ID number not used by anyone else. area is
// the address code of the place of first registration.
func (g *generator) newPerson(r *rand.Rand, area string, lo, hi time.Time) (*person, error) {
	p := &person{male: r.IntN(2) == 0}
	for attempt := 0; ; attempt++ {
		if attempt == 1000 {
			return nil, sluice.Errorf(sluice.EInternal, "demo: cannot find an unused ID number in area %s after 1000 attempts", area)
		}
		p.birth = dateBetween(r, lo, hi)
		// The order code's parity carries the gender: odd male, even female.
		seq := 2*(1+r.IntN(499)) - 1
		if !p.male {
			seq++
		}
		id, err := makeIDCard(area, p.birth, seq)
		if err != nil {
			return nil, err
		}
		if !g.used[id] {
			g.used[id] = true
			p.id = id
			break
		}
	}
	p.name = chineseName(r, p.male)
	return p, nil
}

func gender(p *person) string {
	if p.male {
		return "男"
	}
	return "女"
}

// chronicPermille rises with age, so that ~18% of the population has a
// recognised chronic disease, as in the health insurance statistics.
func chronicPermille(a int) int {
	switch {
	case a >= 60:
		return 280
	case a >= 40:
		return 160
	default:
		return 60
	}
}

// population draws the residents and the non-residents who appear only in
// the health or police data.
func (g *generator) population() error {
	r := newRand(g.seed, streamPeople)
	g.nRes = residentsPerScale * g.scale
	rows := make([][]any, 0, g.nRes)
	for i := 0; i < g.nRes; i++ {
		if i%4096 == 0 {
			if err := g.ctx.Err(); err != nil {
				return fmt.Errorf("demo: generating residents: %w", err)
			}
		}
		d := pickDistrict(r)
		p, err := g.newPerson(r, districts[d].code, birthFirst, birthLast)
		if err != nil {
			return err
		}
		p.resident, p.district, p.inHousehold = true, d, true
		p.phone = phone(r)
		a := age(p.birth)
		p.chronic = chance(r, chronicPermille(a))
		// Allowance recipients are more often old, chronically ill or rural.
		lp := 80 + districts[d].lowIncomeBonus
		if a >= 65 {
			lp += 70
		}
		if p.chronic {
			lp += 50
		}
		p.lowIncome = chance(r, lp)
		if p.lowIncome {
			p.allowance = float64(300 + 10*r.IntN(121))
		}
		p.householdDist = d
		if chance(r, 50) {
			p.householdDist = r.IntN(len(districts))
		}
		p.migrant = chance(r, residentMigrant)
		g.people = append(g.people, p)
		rows = append(rows, []any{p.id, p.name, gender(p), p.birth.Format(time.DateOnly), districts[d].name,
			p.phone, boolInt(p.lowIncome), cents(p.allowance)})
	}
	g.out["civil.residents"] = rows

	for i := 0; i < g.nRes*healthExtraPermille/1000; i++ {
		p, err := g.newNonResident(r, birthFirst, birthLast)
		if err != nil {
			return err
		}
		p.inHealthExtra = true
		p.inHousehold = chance(r, healthExtraInHousehold)
		p.chronic = chance(r, chronicPermille(age(p.birth)))
	}
	for i := 0; i < g.nRes*householdExtraPermille/1000; i++ {
		p, err := g.newNonResident(r, birthFirst, birthLast)
		if err != nil {
			return err
		}
		p.inHousehold = true
	}
	return nil
}

// newNonResident draws someone not in the civil registry: mostly registered
// at birth elsewhere, living in one of the districts.
func (g *generator) newNonResident(r *rand.Rand, lo, hi time.Time) (*person, error) {
	area := outsideAreas[r.IntN(len(outsideAreas))]
	if chance(r, 300) {
		area = districts[r.IntN(len(districts))].code
	}
	p, err := g.newPerson(r, area, lo, hi)
	if err != nil {
		return nil, err
	}
	p.district = pickDistrict(r)
	p.householdDist = p.district
	p.migrant = chance(r, extraMigrant)
	g.people = append(g.people, p)
	return p, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// poisson draws a small count by Knuth's method; lambda stays below 10 here.
func poisson(r *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (g *generator) insuredRow(r *rand.Rand, p *person) []any {
	a := age(p.birth)
	typ := "resident"
	switch {
	case a < 60 && chance(r, 550):
		typ = "employee"
	case a >= 60 && chance(r, 350): // retired employees keep employee insurance
		typ = "employee"
	}
	lambda := 0.6 + float64(a)/40
	if p.chronic {
		lambda += 3.5
	}
	visits := poisson(r, lambda)
	claims := 0.0
	for range visits {
		if chance(r, 80) {
			claims += 3000 + 27000*r.Float64() // an inpatient stay
		} else {
			claims += 80 + 520*r.Float64()
		}
	}
	if p.chronic {
		claims += 600 + 3400*r.Float64() // outpatient chronic-disease drugs
	}
	return []any{p.id, typ, boolInt(p.chronic), cents(claims), int64(visits)}
}

func (g *generator) health() error {
	r := newRand(g.seed, streamHealth)
	mental := newRand(g.seed, streamMental)
	var rows [][]any
	for _, p := range g.people {
		if (p.resident && chance(r, insuredPermille)) || p.inHealthExtra {
			rows = append(rows, append(g.insuredRow(r, p), boolInt(chance(mental, severeMentalPermille))))
		}
	}
	g.out["health.insured"] = rows
	return nil
}

func (g *generator) market() error {
	r := newRand(g.seed, streamMarket)
	n := enterprisesPerScale * g.scale
	codes := map[string]bool{}
	names := map[string]bool{}
	var extraReps []*person
	rows := make([][]any, 0, n)
	for i := 0; i < n; i++ {
		var rep *person
		switch {
		case chance(r, residentRepPermille):
			// Representatives are adults when they found the firm; about
			// nine residents in ten qualify, so a few draws always suffice.
			for attempt := 0; rep == nil || rep.birth.After(repBornLast); attempt++ {
				if attempt == 1000 {
					return sluice.Errorf(sluice.EInternal, "demo: no resident old enough to represent an enterprise")
				}
				rep = g.people[r.IntN(g.nRes)]
			}
		case len(extraReps) > 0 && chance(r, extraRepReusePermille):
			rep = extraReps[r.IntN(len(extraReps))]
		default:
			p, err := g.newNonResident(r, time.Date(1955, 1, 1, 0, 0, 0, 0, time.UTC), repBornLast)
			if err != nil {
				return err
			}
			p.inHousehold = chance(r, extraRepInHousehold)
			rep = p
			extraReps = append(extraReps, p)
		}
		d := pickDistrict(r)
		var code string
		for code == "" || codes[code] {
			var body [8]byte
			for j := range body {
				// Organisation codes are mostly digits, sometimes with a letter.
				if j < 7 && chance(r, 850) {
					body[j] = byte('0' + r.IntN(10))
				} else {
					body[j] = creditCodeChars[r.IntN(len(creditCodeChars))]
				}
			}
			var err error
			if code, err = makeCreditCode(districts[d].code, string(body[:])); err != nil {
				return err
			}
		}
		codes[code] = true
		ind := industries[pickIndustry(r)]
		var name string
		for attempt := 0; attempt < 20 && (name == "" || names[name]); attempt++ {
			name = districts[d].name + brandChars[r.IntN(len(brandChars))] + brandChars[r.IntN(len(brandChars))] +
				ind.suffixes[r.IntN(len(ind.suffixes))] + pick(r, orgForms)
		}
		names[name] = true
		founded := rep.birth.AddDate(18, 0, 0)
		if founded.Before(firstFirm) {
			founded = firstFirm
		}
		capital := math.Exp(math.Log(1e4) + r.Float64()*(math.Log(5e7)-math.Log(1e4)))
		capital = math.Round(capital/1000) * 1000
		rows = append(rows, []any{code, name, rep.name, rep.id, ind.name, districts[d].name,
			cents(capital), pick(r, enterpriseStatuses), dateBetween(r, founded, dataAsOf).Format(time.DateOnly)})
	}
	g.out["market.enterprises"] = rows
	return nil
}

func pickIndustry(r *rand.Rand) int {
	total := 0
	for _, in := range industries {
		total += in.weight
	}
	n := r.IntN(total)
	for i, in := range industries {
		if n < in.weight {
			return i
		}
		n -= in.weight
	}
	return len(industries) - 1
}

func (g *generator) police() error {
	var rows [][]any
	for _, p := range g.people {
		if p.inHousehold {
			rows = append(rows, []any{p.id, p.name, districts[p.householdDist].name, boolInt(p.migrant)})
		}
	}
	g.out["police.household"] = rows
	return nil
}

func (g *generator) crime() error {
	r := newRand(g.seed, streamCrime)
	var rows [][]any
	for _, p := range g.people[:g.nRes] {
		rate := 4
		if p.male {
			rate = 16
		}
		if !chance(r, rate) {
			continue
		}
		lo := p.birth.AddDate(18, 0, 0)
		if lo.Before(firstCrime) {
			lo = firstCrime
		}
		if lo.After(dataAsOf) {
			continue
		}
		n := 1
		if chance(r, 100) {
			n = 2
		}
		for range n {
			rows = append(rows, []any{p.id, pick(r, offenses), dateBetween(r, lo, dataAsOf).Format(time.DateOnly)})
		}
	}
	g.out["police.criminal_records"] = rows
	return nil
}
