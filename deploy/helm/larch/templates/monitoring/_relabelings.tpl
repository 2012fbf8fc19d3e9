{{/*
Relabelings of a ServiceMonitor endpoint or PodMonitor endpoint: the labels
deploy/prometheus/prometheus.yml sets (job larch-store / larch-agent, node,
environment; the operator adds namespace, pod and container, which with the
metric names are all the dashboards and alerts select on), then the user's.
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
{{- if .role }}
- sourceLabels: [__meta_kubernetes_pod_label_larch_dev_role]
  targetLabel: role
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Whether the store asks a token for /metrics: auth is on and the user's
store.config.auth.unauthenticated_paths (when set) leaves /metrics out.
Renders "true" or nothing.
*/}}
{{- define "larch.store.metricsNeedToken" -}}
{{- if .Values.store.auth.enabled -}}
{{- $auth := .Values.store.config.auth | default dict -}}
{{- if and (hasKey $auth "unauthenticated_paths") (not (has "/metrics" ($auth.unauthenticated_paths | default list))) -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Scheme, TLS settings and credentials of a ServiceMonitor or PodMonitor
endpoint: https with the CA (and Prometheus' client certificate) when the
store serves TLS, a bearer token when its /metrics needs one; plain http
for the agents, whose /metrics port has no TLS.
Pass (dict "ctx" $ "component" "store"|"agent").
*/}}
{{- define "larch.monitor.endpointSecurity" -}}
{{- $v := .ctx.Values -}}
{{- $s := $v.prometheus.storeScrape -}}
{{- $store := eq .component "store" -}}
{{- if and $store $v.store.tls.enabled }}
scheme: https
tlsConfig:
  ca:
    secret:
      name: {{ $s.caSecret | default (include "larch.store.tlsSecret" .ctx) }}
      key: {{ $s.caKey }}
  {{- if include "larch.scalable" .ctx }}
  serverName: {{ $s.serverName | default (include "larch.cluster.tlsServerName" .ctx) }}
  {{- else }}
  serverName: {{ $s.serverName | default (printf "%s.%s.svc" (include "larch.store.fullname" .ctx) .ctx.Release.Namespace) }}
  {{- end }}
  {{- if $s.clientCertSecret }}
  cert:
    secret:
      name: {{ $s.clientCertSecret }}
      key: tls.crt
  keySecret:
    name: {{ $s.clientCertSecret }}
    key: tls.key
  {{- else if has $v.store.tls.clientAuthType (list "RequireAnyClientCert" "RequireAndVerifyClientCert") }}
  {{- fail (printf "prometheus.storeScrape.clientCertSecret is required: the store asks every client for a certificate (store.tls.clientAuthType %s), Prometheus too" $v.store.tls.clientAuthType) }}
  {{- end }}
{{- else }}
scheme: http
{{- end }}
{{- if and $store (include "larch.store.metricsNeedToken" .ctx) }}
authorization:
  type: Bearer
  credentials:
    name: {{ required "prometheus.storeScrape.tokenSecret is required: /metrics needs a token (store.auth.enabled, /metrics not in store.config.auth.unauthenticated_paths)" $s.tokenSecret }}
    key: {{ $s.tokenKey }}
{{- end }}
{{- end -}}

{{/*
What the ServiceMonitors or PodMonitors scrape: the store (one per role in
SimpleScalable) and the agents, each with its name, namespace, labels and
selector. A YAML list.
*/}}
{{- define "larch.monitor.targets" -}}
{{- $out := list -}}
{{- if .Values.store.enabled -}}
{{- if include "larch.scalable" . -}}
{{- range $role := list "write" "read" "backend" -}}
{{- $out = append $out (dict "component" "store" "role" $role "namespace" $.Release.Namespace "name" (include "larch.role.fullname" (dict "ctx" $ "role" $role)) "labels" (include "larch.role.labels" (dict "ctx" $ "role" $role) | fromYaml) "selector" (include "larch.role.selectorLabels" (dict "ctx" $ "role" $role) | fromYaml)) -}}
{{- end -}}
{{- else -}}
{{- $out = append $out (dict "component" "store" "role" "" "namespace" .Release.Namespace "name" (include "larch.store.fullname" .) "labels" (include "larch.labels" (dict "ctx" $ "component" "store") | fromYaml) "selector" (include "larch.selectorLabels" (dict "ctx" $ "component" "store") | fromYaml)) -}}
{{- end -}}
{{- end -}}
{{- if .Values.agent.enabled -}}
{{- $out = append $out (dict "component" "agent" "role" "" "namespace" (include "larch.agent.namespace" .) "name" (include "larch.agent.fullname" .) "labels" (include "larch.labels" (dict "ctx" $ "component" "agent") | fromYaml) "selector" (include "larch.selectorLabels" (dict "ctx" $ "component" "agent") | fromYaml)) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}
