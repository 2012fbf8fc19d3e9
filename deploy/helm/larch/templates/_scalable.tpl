{{/*
Helpers of deploymentMode SimpleScalable: the store runs as three roles
(write, read, backend), each its own workload. Every role's pods carry
app.kubernetes.io/component "store" (so Prometheus gives them the job
"larch-store" the dashboards and alerts use) and larch.dev/role, which the
role's selectors add.
*/}}

{{/* "true" in SimpleScalable mode, nothing otherwise. */}}
{{- define "larch.scalable" -}}
{{- if eq .Values.deploymentMode "SimpleScalable" -}}true{{- end -}}
{{- end -}}

{{/* Name of a role's objects; pass (dict "ctx" $ "role" "write"). */}}
{{- define "larch.role.fullname" -}}
{{- printf "%s-%s" (include "larch.fullname" .ctx) .role -}}
{{- end -}}

{{/* Labels of a role's objects; pass (dict "ctx" $ "role" "write"). */}}
{{- define "larch.role.labels" -}}
{{ include "larch.labels" (dict "ctx" .ctx "component" "store") }}
larch.dev/role: {{ .role }}
{{- end -}}

{{/* Labels selecting a role's pods; pass (dict "ctx" $ "role" "write"). */}}
{{- define "larch.role.selectorLabels" -}}
{{ include "larch.selectorLabels" (dict "ctx" .ctx "component" "store") }}
larch.dev/role: {{ .role }}
{{- end -}}

{{/*
The write nodes' headless Service with the gRPC port
(<write>-headless.<namespace>.svc.<domain>:<grpc>): cluster.dns of the
write and read nodes, re-resolved by the store, so a changed replica count
needs no new configuration. The store probes each address it resolves and
counts only the nodes that answer as members.
*/}}
{{- define "larch.write.dns" -}}
{{- $write := include "larch.role.fullname" (dict "ctx" . "role" "write") -}}
{{- printf "%s-headless.%s.svc.%s:%d" $write .Release.Namespace .Values.clusterDomain (int .Values.store.ports.grpc) -}}
{{- end -}}

{{/*
Name the write nodes' certificate is checked for by the nodes' gRPC
clients (cluster.tls.tls_server_name): cluster.dns resolves to pod IPs,
which no certificate names.
*/}}
{{- define "larch.cluster.tlsServerName" -}}
{{- .Values.store.tls.cluster.serverName | default (printf "%s-headless.%s.svc" (include "larch.role.fullname" (dict "ctx" . "role" "write")) .Release.Namespace) -}}
{{- end -}}

{{/*
cluster.tls of the write and read nodes when store.tls is on: the CA the
write nodes' certificate is checked against (store.tls.cluster.caSecret,
else the ca.crt of the store's TLS Secret), the name it is checked for,
and a client certificate when the nodes ask for one
(store.tls.cluster.clientCertSecret, else the node's own certificate).
*/}}
{{- define "larch.cluster.tls" -}}
{{- $t := .Values.store.tls -}}
{{- $tls := dict "tls_enabled" true "tls_server_name" (include "larch.cluster.tlsServerName" .) "tls_ca_path" (ternary "/etc/larch/cluster-ca/ca.crt" "/etc/larch/tls/ca.crt" (not (empty $t.cluster.caSecret))) -}}
{{- if ne $t.clientAuthType "NoClientCert" -}}
{{- $dir := ternary "/etc/larch/cluster-client" "/etc/larch/tls" (not (empty $t.cluster.clientCertSecret)) -}}
{{- $_ := set $tls "tls_cert_path" (printf "%s/tls.crt" $dir) -}}
{{- $_ := set $tls "tls_key_path" (printf "%s/tls.key" $dir) -}}
{{- end -}}
{{- toYaml $tls -}}
{{- end -}}

{{/* Scheme of the store's HTTP port: https with store.tls. */}}
{{- define "larch.store.scheme" -}}
{{- ternary "https" "http" .Values.store.tls.enabled -}}
{{- end -}}

{{/* In-cluster URL of the Service taking pushes (the write Service in SimpleScalable). */}}
{{- define "larch.store.pushURL" -}}
{{- if include "larch.scalable" . -}}
{{- printf "%s://%s.%s.svc.%s:%d" (include "larch.store.scheme" .) (include "larch.role.fullname" (dict "ctx" . "role" "write")) .Release.Namespace .Values.clusterDomain (int .Values.store.ports.http) -}}
{{- else -}}
{{- include "larch.store.url" . -}}
{{- end -}}
{{- end -}}

{{/* In-cluster URL of the Service answering queries (the read Service in SimpleScalable). */}}
{{- define "larch.store.queryURL" -}}
{{- if include "larch.scalable" . -}}
{{- printf "%s://%s.%s.svc.%s:%d" (include "larch.store.scheme" .) (include "larch.role.fullname" (dict "ctx" . "role" "read")) .Release.Namespace .Values.clusterDomain (int .Values.store.ports.http) -}}
{{- else -}}
{{- include "larch.store.url" . -}}
{{- end -}}
{{- end -}}

{{/*
What SimpleScalable needs that the values may lack: a bucket (the roles
share nothing else), a token for the read nodes when tokens are on, and
egress to the bucket when NetworkPolicies are on. Renders nothing.
*/}}
{{- define "larch.scalable.check" -}}
{{- if include "larch.scalable" . -}}
{{- if eq .Values.store.objectStorage.backend "filesystem" -}}
{{- fail "deploymentMode SimpleScalable needs object storage: set store.objectStorage.backend to s3, gcs or azure (the roles share only the bucket)" -}}
{{- end -}}
{{- if and .Values.store.auth.enabled (not .Values.read.writeNodeTokenSecret) -}}
{{- fail "read.writeNodeTokenSecret is required with store.auth.enabled in SimpleScalable mode: read and write nodes send an admin token to the write nodes (cluster.token_file)" -}}
{{- end -}}
{{- if gt (int .Values.write.replicationFactor) (int .Values.write.replicas) -}}
{{- fail "write.replicationFactor must not exceed write.replicas: every stream needs that many write nodes" -}}
{{- end -}}
{{- if and .Values.store.networkPolicy.enabled (not .Values.store.networkPolicy.egress.objectStorage.peers) -}}
{{- fail "store.networkPolicy.egress.objectStorage.peers is required in SimpleScalable mode: without it the NetworkPolicies block the bucket (e.g. an ipBlock of the endpoint, or 0.0.0.0/0 on port 443)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Topology spread of a role's pods across zones and nodes.
Pass (dict "ctx" $ "role" "write" "spread" .Values.write.topologySpread).
*/}}
{{- define "larch.role.topologySpread" -}}
{{- if .spread.enabled -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: {{ .spread.zones }}
    labelSelector:
      matchLabels:
        {{- include "larch.role.selectorLabels" (dict "ctx" .ctx "role" .role) | nindent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: {{ .spread.nodes }}
    labelSelector:
      matchLabels:
        {{- include "larch.role.selectorLabels" (dict "ctx" .ctx "role" .role) | nindent 8 }}
{{- end -}}
{{- end -}}

{{/*
The pod spec of a role. Pass (dict "ctx" $ "role" "write" "values"
.Values.write "dataVolume" <volume entry or nothing, for roles whose data
directory is not a claim>).
*/}}
{{- define "larch.role.podSpec" -}}
{{- $v := .ctx.Values -}}
{{- $r := .values -}}
{{- $ctx := .ctx -}}
serviceAccountName: {{ include "larch.store.serviceAccountName" .ctx }}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ $r.terminationGracePeriodSeconds }}
{{- with $r.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml $v.store.podSecurityContext | nindent 2 }}
containers:
  - name: store
    image: {{ include "larch.image" (dict "ctx" $ctx "image" $v.store.image) }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args:
      - --config=/etc/larch/store.yaml
      {{- with (concat ($v.store.extraArgs | default list) ($r.extraArgs | default list)) }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with (concat ($v.store.extraEnv | default list) ($r.extraEnv | default list)) }}
    env:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $v.store.objectStorage.credentialsSecret }}
    envFrom:
      - secretRef:
          name: {{ . }}
    {{- end }}
    ports:
      - name: http
        containerPort: {{ $v.store.ports.http }}
        protocol: TCP
      - name: grpc
        containerPort: {{ $v.store.ports.grpc }}
        protocol: TCP
    startupProbe:
      {{- include "larch.store.probe" (dict "ctx" $ctx "probe" $v.store.probes.startup) | nindent 6 }}
    livenessProbe:
      {{- include "larch.store.probe" (dict "ctx" $ctx "probe" $v.store.probes.liveness) | nindent 6 }}
    readinessProbe:
      {{- include "larch.store.probe" (dict "ctx" $ctx "probe" $v.store.probes.readiness) | nindent 6 }}
    resources:
      {{- toYaml $r.resources | nindent 6 }}
    securityContext:
      {{- toYaml $v.store.containerSecurityContext | nindent 6 }}
    volumeMounts:
      - name: config
        mountPath: /etc/larch
        readOnly: true
      - name: data
        mountPath: {{ include "larch.store.dataDir" $ctx }}
      {{- if $v.store.auth.enabled }}
      - name: auth
        mountPath: /etc/larch/auth
        readOnly: true
      {{- /* read and write nodes send it to the write nodes; the backend's
      ruler sends it with its queries to the read nodes. */}}
      - name: write-node-token
        mountPath: /etc/larch/write-node-token
        readOnly: true
      {{- if and (eq .role "backend") $v.backend.ruler.queryTokenSecret }}
      - name: ruler-query-token
        mountPath: /etc/larch/ruler-query-token
        readOnly: true
      {{- end }}
      {{- end }}
      {{- if $v.store.tls.enabled }}
      - name: tls
        mountPath: /etc/larch/tls
        readOnly: true
      {{- if or (eq .role "read") (eq .role "write") (eq .role "backend") }}
      {{- if $v.store.tls.cluster.caSecret }}
      - name: cluster-ca
        mountPath: /etc/larch/cluster-ca
        readOnly: true
      {{- end }}
      {{- if and $v.store.tls.cluster.clientCertSecret (ne $v.store.tls.clientAuthType "NoClientCert") }}
      - name: cluster-client
        mountPath: /etc/larch/cluster-client
        readOnly: true
      {{- end }}
      {{- end }}
      {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "larch.role.fullname" (dict "ctx" $ctx "role" .role) }}-config
  {{- with .dataVolume }}
  {{- toYaml (list .) | nindent 2 }}
  {{- end }}
  {{- if $v.store.auth.enabled }}
  - name: auth
    secret:
      secretName: {{ required "store.auth.tokensSecret is required with store.auth.enabled" $v.store.auth.tokensSecret }}
  - name: write-node-token
    secret:
      secretName: {{ $v.read.writeNodeTokenSecret }}
      items:
        - key: {{ $v.read.writeNodeTokenKey }}
          path: {{ $v.read.writeNodeTokenKey }}
  {{- if and (eq .role "backend") $v.backend.ruler.queryTokenSecret }}
  - name: ruler-query-token
    secret:
      secretName: {{ $v.backend.ruler.queryTokenSecret }}
      items:
        - key: {{ $v.backend.ruler.queryTokenKey }}
          path: {{ $v.backend.ruler.queryTokenKey }}
  {{- end }}
  {{- end }}
  {{- if $v.store.tls.enabled }}
  - name: tls
    secret:
      secretName: {{ include "larch.store.tlsSecret" $ctx }}
  {{- if or (eq .role "read") (eq .role "write") (eq .role "backend") }}
  {{- with $v.store.tls.cluster.caSecret }}
  - name: cluster-ca
    secret:
      secretName: {{ . }}
      items:
        - key: ca.crt
          path: ca.crt
  {{- end }}
  {{- if and $v.store.tls.cluster.clientCertSecret (ne $v.store.tls.clientAuthType "NoClientCert") }}
  - name: cluster-client
    secret:
      secretName: {{ $v.store.tls.cluster.clientCertSecret }}
  {{- end }}
  {{- end }}
  {{- end }}
{{- with $r.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $r.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $r.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $r.topologySpread }}
{{- include "larch.role.topologySpread" (dict "ctx" $ctx "role" $.role "spread" .) | nindent 0 }}
{{- end }}
{{- end -}}

{{/*
Pod template metadata of a role. Pass (dict "ctx" $ "role" "write" "values" .Values.write).
*/}}
{{- define "larch.role.podMetadata" -}}
{{- $v := .ctx.Values -}}
labels:
  {{- include "larch.role.labels" (dict "ctx" .ctx "role" .role) | nindent 2 }}
  {{- with $v.store.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- if and (eq $v.store.objectStorage.backend "azure") $v.store.objectStorage.azure.workloadIdentity }}
  azure.workload.identity/use: "true"
  {{- end }}
{{- with include "larch.podAnnotations" (dict "ctx" .ctx "config" (include "larch.store.roleConfig" (dict "ctx" .ctx "role" .role)) "port" $v.store.ports.http "scheme" (include "larch.store.scheme" .ctx) "extra" (merge (deepCopy (.values.podAnnotations | default dict)) ($v.store.podAnnotations | default dict))) }}
{{ . }}
{{- end }}
{{- end -}}
