package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gov/sluice/broker/admission"
)

// Admission control (broker/admission): per cost class, the queries
// running and waiting and the bound, read from the controller at each
// scrape; what it admitted, refused and lost to departed clients; and the
// time queries waited for a slot.

var (
	admRunning  = prometheus.NewDesc("sluice_broker_admission_running", "Queries of the cost class running now.", []string{"class"}, nil)
	admWaiting  = prometheus.NewDesc("sluice_broker_admission_waiting", "Queries of the cost class waiting for a slot now (the queue depth).", []string{"class"}, nil)
	admLimit    = prometheus.NewDesc("sluice_broker_admission_limit", "How many queries of the cost class may run at once.", []string{"class"}, nil)
	admAdmitted = prometheus.NewDesc("sluice_broker_admission_admitted_total", "Queries of the cost class started, at once or after waiting.", []string{"class"}, nil)
	admRefused  = prometheus.NewDesc("sluice_broker_admission_refused_total", "Queries of the cost class refused as busy (ResourceExhausted with a retry delay).", []string{"class"}, nil)
	admGave     = prometheus.NewDesc("sluice_broker_admission_abandoned_total", "Queries that left the queue because their client went away.", []string{"class"}, nil)
	admEstimate = prometheus.NewDesc("sluice_broker_admission_expected_seconds", "The expected run time of a query of the cost class (moving average), which early refusals use.", []string{"class"}, nil)
)

// admissionCollector reads a controller's Stats at each scrape.
type admissionCollector struct{ c *admission.Controller }

func (a admissionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{admRunning, admWaiting, admLimit, admAdmitted, admRefused, admGave, admEstimate} {
		ch <- d
	}
}

func (a admissionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range a.c.Stats() {
		cl := string(s.Class)
		ch <- prometheus.MustNewConstMetric(admRunning, prometheus.GaugeValue, float64(s.Running), cl)
		ch <- prometheus.MustNewConstMetric(admWaiting, prometheus.GaugeValue, float64(s.Waiting), cl)
		ch <- prometheus.MustNewConstMetric(admLimit, prometheus.GaugeValue, float64(s.Limit), cl)
		ch <- prometheus.MustNewConstMetric(admAdmitted, prometheus.CounterValue, float64(s.Admitted), cl)
		ch <- prometheus.MustNewConstMetric(admRefused, prometheus.CounterValue, float64(s.Refused), cl)
		ch <- prometheus.MustNewConstMetric(admGave, prometheus.CounterValue, float64(s.Gave), cl)
		ch <- prometheus.MustNewConstMetric(admEstimate, prometheus.GaugeValue, s.Estimate.Seconds(), cl)
	}
}

// WatchAdmission exports c's state at every scrape. Call it once.
func (m *Broker) WatchAdmission(c *admission.Controller) {
	if m == nil || c == nil {
		return
	}
	m.queueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_broker_admission_wait_seconds",
		Help:    "How long queries waited for a slot of their cost class before they started.",
		Buckets: latencyBuckets,
	}, []string{"class"})
	m.reg.MustRegister(admissionCollector{c}, m.queueWait)
}

// QueueWaited records how long a started query waited for its slot.
func (m *Broker) QueueWaited(class admission.Class, d time.Duration) {
	if m == nil || m.queueWait == nil {
		return
	}
	m.queueWait.WithLabelValues(string(class)).Observe(d.Seconds())
}
