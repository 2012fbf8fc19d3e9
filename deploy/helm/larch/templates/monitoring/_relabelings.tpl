{{/*
Relabelings of a ServiceMonitor endpoint or PodMonitor endpoint: the labels
the dashboards and alerts use, as deploy/prometheus/prometheus.yml sets
them (job larch-store / larch-agent, node, environment; the operator adds
namespace and pod), then the user's.
Pass (dict "ctx" $ "extra" <relabelings>).
*/}}
{{- define "larch.monitor.relabelings" -}}
- sourceLabels: [__meta_kubernetes_pod_label_app_kubernetes_io_component]
  targetLabel: job
  replacement: larch-$1
- sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
- sourceLabels: [__meta_kubernetes_pod_label_larch_dev_environment]
  targetLabel: environment
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}
