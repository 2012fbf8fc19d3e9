{{/*
Names, labels and small computed values shared by every template.
*/}}

{{- define "larch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "larch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "larch.store.fullname" -}}
{{- printf "%s-store" (include "larch.fullname" .) -}}
{{- end -}}

{{- define "larch.agent.fullname" -}}
{{- printf "%s-agent" (include "larch.fullname" .) -}}
{{- end -}}

{{- define "larch.agent.namespace" -}}
{{- default .Release.Namespace .Values.agent.namespace -}}
{{- end -}}

{{- define "larch.grafana.namespace" -}}
{{- default .Release.Namespace .Values.grafana.namespace -}}
{{- end -}}

{{/* Labels on every object; pass (dict "ctx" $ "component" "store"). */}}
{{- define "larch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "larch.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ default .ctx.Release.Service .ctx.Values.managedBy }}
app.kubernetes.io/part-of: larch
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that select the pods of a component. */}}
{{- define "larch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "larch.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
metadata.annotations with the Argo CD sync wave (when argocd.syncWaves) and
any extra annotations; empty when there are none.
Pass (dict "ctx" $ "wave" "0" "extra" .Values.x.annotations).
*/}}
{{- define "larch.annotations" -}}
{{- $ann := dict -}}
{{- if .ctx.Values.argocd.syncWaves -}}
{{- $_ := set $ann "argocd.argoproj.io/sync-wave" .wave -}}
{{- end -}}
{{- with .extra -}}
{{- $ann = merge $ann . -}}
{{- end -}}
{{- with $ann -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
Pod template annotations: config checksum, Prometheus scrape hints, extras.
Pass (dict "ctx" $ "config" <rendered config> "port" <metrics port> "extra" <map>),
and "scheme" (http or https) for a port that may serve TLS.
*/}}
{{- define "larch.podAnnotations" -}}
{{- $ann := dict -}}
{{- if .ctx.Values.checksumAnnotations -}}
{{- $_ := set $ann "checksum/config" (sha256sum .config) -}}
{{- end -}}
{{- if .ctx.Values.prometheus.scrapeAnnotations -}}
{{- $_ := set $ann "prometheus.io/scrape" "true" -}}
{{- $_ := set $ann "prometheus.io/port" (toString .port) -}}
{{- $_ := set $ann "prometheus.io/path" "/metrics" -}}
{{- with .scheme -}}
{{- $_ := set $ann "prometheus.io/scheme" . -}}
{{- end -}}
{{- end -}}
{{- with .extra -}}
{{- $ann = merge $ann . -}}
{{- end -}}
{{- with $ann -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* Image reference; pass (dict "ctx" $ "image" .Values.store.image). */}}
{{- define "larch.image" -}}
{{- $repo := printf "%s/%s" .ctx.Values.image.registry .image.repository | trimPrefix "/" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag -}}
{{- if eq $tag "latest" -}}
{{- fail "image tag \"latest\" is not allowed: pin a version or a digest" -}}
{{- end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{- define "larch.store.serviceAccountName" -}}
{{- if .Values.store.serviceAccount.create -}}
{{- default (include "larch.store.fullname" .) .Values.store.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.store.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "larch.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create -}}
{{- default (include "larch.agent.fullname" .) .Values.agent.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.agent.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "larch.agent.priorityClassName" -}}
{{- if .Values.agent.priorityClass.create -}}
{{- default (include "larch.agent.fullname" .) .Values.agent.priorityClass.name -}}
{{- else -}}
{{- .Values.agent.priorityClass.name -}}
{{- end -}}
{{- end -}}

{{/* In-cluster base URL of this release's store HTTP API. */}}
{{- define "larch.store.url" -}}
{{- printf "%s://%s.%s.svc.%s:%d" (ternary "https" "http" .Values.store.tls.enabled) (include "larch.store.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.store.ports.http) -}}
{{- end -}}

{{/* The Secret of the store's certificate. */}}
{{- define "larch.store.tlsSecret" -}}
{{- .Values.store.tls.secretName | default (printf "%s-tls" (include "larch.store.fullname" .)) -}}
{{- end -}}

{{/* A probe, with scheme HTTPS when the store serves TLS. */}}
{{- define "larch.store.probe" -}}
{{- $p := deepCopy .probe -}}
{{- if and .ctx.Values.store.tls.enabled $p.httpGet -}}
{{- $_ := set $p.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/* The URL agents push to. */}}
{{- define "larch.agent.storeURL" -}}
{{- if .Values.agent.storeURL -}}
{{- .Values.agent.storeURL -}}
{{- else if .Values.store.enabled -}}
{{- include "larch.store.pushURL" . -}}
{{- else -}}
{{- fail "agent.storeURL is required when store.enabled is false: set it to the URL of a larch-store" -}}
{{- end -}}
{{- end -}}

{{/* Mount path of the store's volume, which is its data_dir. */}}
{{- define "larch.store.dataDir" -}}/var/lib/larch{{- end -}}

{{/* The store's configuration file, from store.config plus the keys the chart owns. */}}
{{- define "larch.store.config" -}}
{{- include "larch.store.roleConfig" (dict "ctx" . "role" "all") -}}
{{- end -}}

{{/*
The token file the backend's ruler sends with its queries to the read
nodes: backend.ruler.queryTokenSecret's, else read.writeNodeTokenSecret's.
*/}}
{{- define "larch.ruler.queryTokenFile" -}}
{{- if .Values.backend.ruler.queryTokenSecret -}}
{{- printf "/etc/larch/ruler-query-token/%s" .Values.backend.ruler.queryTokenKey -}}
{{- else -}}
{{- printf "/etc/larch/write-node-token/%s" .Values.read.writeNodeTokenKey -}}
{{- end -}}
{{- end -}}

{{/* In-cluster URL of the backend Service, whose ruler answers the rules API. */}}
{{- define "larch.ruler.apiURL" -}}
{{- printf "%s://%s.%s.svc.%s:%d" (include "larch.store.scheme" .) (include "larch.role.fullname" (dict "ctx" . "role" "backend")) .Release.Namespace .Values.clusterDomain (int .Values.store.ports.http) -}}
{{- end -}}

{{/*
The configuration file of one role of the store: "all" (SingleBinary) or
"write", "read", "backend" (SimpleScalable). The keys the chart owns win
over <role>.config, which wins over store.config.
Pass (dict "ctx" $ "role" "write").
*/}}
{{- define "larch.store.roleConfig" -}}
{{- $v := .ctx.Values -}}
{{- $role := .role -}}
{{- $owned := dict "http_addr" (printf "0.0.0.0:%d" (int $v.store.ports.http)) "grpc_addr" (printf "0.0.0.0:%d" (int $v.store.ports.grpc)) "data_dir" (include "larch.store.dataDir" .ctx) -}}
{{- if $v.store.auth.enabled -}}
{{- $_ := set $owned "auth" (dict "tokens_file" (printf "/etc/larch/auth/%s" $v.store.auth.tokensKey)) -}}
{{- end -}}
{{- if $v.store.tls.enabled -}}
{{- $tls := dict "cert_file" "/etc/larch/tls/tls.crt" "key_file" "/etc/larch/tls/tls.key" "client_auth_type" $v.store.tls.clientAuthType -}}
{{- if has $v.store.tls.clientAuthType (list "VerifyClientCertIfGiven" "RequireAndVerifyClientCert") -}}
{{- $_ := set $tls "client_ca_file" "/etc/larch/tls/ca.crt" -}}
{{- end -}}
{{- $_ := set $owned "tls" $tls -}}
{{- end -}}
{{- $os := $v.store.objectStorage -}}
{{- if ne $os.backend "filesystem" -}}
{{- $cache := dict "max_size" $os.cacheSize -}}
{{- with $os.cacheDir }}{{ $_ := set $cache "dir" . }}{{ end -}}
{{- $storage := dict "backend" $os.backend "cache" $cache -}}
{{- if eq $os.backend "s3" -}}
{{- $s3 := dict "bucket" (required "store.objectStorage.s3.bucket is required with backend s3" $os.s3.bucket) "force_path_style" $os.s3.forcePathStyle -}}
{{- with $os.s3.endpoint }}{{ $_ := set $s3 "endpoint" . }}{{ end -}}
{{- with $os.s3.region }}{{ $_ := set $s3 "region" . }}{{ end -}}
{{- if $os.credentialsSecret -}}
{{- /* Expanded by the store from the Secret's environment variables. */ -}}
{{- $_ := set $s3 "access_key_id" "${AWS_ACCESS_KEY_ID}" -}}
{{- $_ := set $s3 "secret_access_key" "${AWS_SECRET_ACCESS_KEY}" -}}
{{- end -}}
{{- $_ := set $storage "s3" $s3 -}}
{{- else if eq $os.backend "gcs" -}}
{{- $_ := set $storage "gcs" (dict "bucket" (required "store.objectStorage.gcs.bucket is required with backend gcs" $os.gcs.bucket)) -}}
{{- else if eq $os.backend "azure" -}}
{{- $az := dict "account" (required "store.objectStorage.azure.account is required with backend azure" $os.azure.account) "container" (required "store.objectStorage.azure.container is required with backend azure" $os.azure.container) -}}
{{- with $os.azure.endpoint }}{{ $_ := set $az "endpoint" . }}{{ end -}}
{{- if $os.credentialsSecret -}}
{{- $_ := set $az "access_key" "${AZURE_STORAGE_ACCOUNT_KEY}" -}}
{{- end -}}
{{- $_ := set $storage "azure" $az -}}
{{- end -}}
{{- $_ := set $owned "storage" $storage -}}
{{- end -}}
{{- $roleConfig := dict -}}
{{- if ne $role "all" -}}
{{- $_ := set $owned "target" $role -}}
{{- $roleConfig = deepCopy ((index $v $role).config | default dict) -}}
{{- /* One ruler for the whole store, so alerts are sent once: the backend
node (a single pod) evaluates the rules as queries to the read nodes, which
see every line, and keeps its rule groups and alert state in the bucket (its
data directory is an emptyDir); write and read nodes run none, and read
nodes forward the rules API to it. */ -}}
{{- if eq $role "backend" -}}
{{- $qf := dict "address" (include "larch.store.queryURL" .ctx) -}}
{{- if $v.store.auth.enabled -}}
{{- $_ := set $qf "token_file" (include "larch.ruler.queryTokenFile" .ctx) -}}
{{- end -}}
{{- /* With store.tls the read nodes' certificate is checked as the
nodes check each other's (cluster.tls: the CA, the name, a client
certificate when the nodes ask for one). */ -}}
{{- if $v.store.tls.enabled -}}
{{- $qf = merge $qf (include "larch.cluster.tls" .ctx | fromYaml) -}}
{{- end -}}
{{- $_ := set $owned "ruler" (dict "enabled" true "storage" (dict "type" "bucket") "evaluation" (dict "mode" "remote" "query_frontend" $qf)) -}}
{{- else if eq $role "read" -}}
{{- $fwd := dict "enabled" false "api_forward_url" (include "larch.ruler.apiURL" .ctx) -}}
{{- if $v.store.tls.enabled -}}
{{- $_ := set $fwd "api_forward_client" (include "larch.cluster.tls" .ctx | fromYaml) -}}
{{- end -}}
{{- $_ := set $owned "ruler" $fwd -}}
{{- else -}}
{{- $_ := set $owned "ruler" (dict "enabled" false) -}}
{{- end -}}
{{- end -}}
{{- $merged := merge $owned $roleConfig (deepCopy $v.store.config) -}}
{{- /* merge takes a false of the chart's for unset: set it again. */ -}}
{{- if and (ne $role "all") (ne $role "backend") -}}
{{- $_ := set $merged.ruler "enabled" false -}}
{{- end -}}
{{- if eq $role "write" -}}
{{- /* A write node leaves with its heads in the bucket: on SIGTERM it
flushes until shutdown_timeout (terminationGracePeriodSeconds is longer). */ -}}
{{- $_ := set $owned "shutdown_timeout" $v.write.shutdownTimeout -}}
{{- $_ := set $owned "ingester" (dict "flush_on_shutdown" true) -}}
{{- $cluster := dict "dns" (include "larch.write.dns" .ctx) "replication_factor" (int $v.write.replicationFactor) -}}
{{- if $v.store.auth.enabled -}}
{{- $_ := set $cluster "token_file" (printf "/etc/larch/write-node-token/%s" $v.read.writeNodeTokenKey) -}}
{{- end -}}
{{- if $v.store.tls.enabled -}}
{{- $_ := set $cluster "tls" (include "larch.cluster.tls" .ctx | fromYaml) -}}
{{- end -}}
{{- $_ := set $owned "cluster" $cluster -}}
{{- with $v.write.walMaxSize -}}
{{- $_ := set $owned "wal" (dict "max_size" .) -}}
{{- end -}}
{{- else if eq $role "read" -}}
{{- $cluster := dict "dns" (include "larch.write.dns" .ctx) "replication_factor" (int $v.write.replicationFactor) -}}
{{- if $v.store.auth.enabled -}}
{{- $_ := set $cluster "token_file" (printf "/etc/larch/write-node-token/%s" $v.read.writeNodeTokenKey) -}}
{{- end -}}
{{- if $v.store.tls.enabled -}}
{{- $_ := set $cluster "tls" (include "larch.cluster.tls" .ctx | fromYaml) -}}
{{- end -}}
{{- $_ := set $owned "cluster" $cluster -}}
{{- end -}}
{{- /* The credential references are quoted: a variable the Secret lacks
expands to an empty string (the credential chain), not to null. */ -}}
{{- regexReplaceAll "(?m)^(\\s+(access_key_id|secret_access_key|access_key)): (\\$\\{[A-Z_]+\\})$" (toYaml $merged) "${1}: '${3}'" -}}
{{- end -}}

{{/* The agent's configuration file, from agent.config plus the keys the chart owns. */}}
{{- define "larch.agent.config" -}}
{{- $owned := dict "pods_dir" .Values.agent.podsDir "store" (include "larch.agent.storeURL" .) "positions" (printf "%s/positions.yaml" (trimSuffix "/" .Values.agent.positionsDir)) "http_addr" (printf "0.0.0.0:%d" (int .Values.agent.port)) -}}
{{- with .Values.agent.auth.tokenSecret -}}
{{- $_ := set $owned "bearer_token_file" (printf "/etc/larch-agent/auth/%s" $.Values.agent.auth.tokenKey) -}}
{{- end -}}
{{- with .Values.agent.tls.caSecret -}}
{{- $_ := set $owned "tls_ca_file" "/etc/larch-agent/ca/ca.crt" -}}
{{- end -}}
{{- with .Values.agent.tls.clientCertSecret -}}
{{- $_ := set $owned "tls_cert_file" "/etc/larch-agent/client/tls.crt" -}}
{{- $_ := set $owned "tls_key_file" "/etc/larch-agent/client/tls.key" -}}
{{- end -}}
{{- toYaml (merge $owned (deepCopy .Values.agent.config)) -}}
{{- end -}}

{{/* DNS egress rule for NetworkPolicies. */}}
{{- define "larch.networkPolicy.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end -}}
