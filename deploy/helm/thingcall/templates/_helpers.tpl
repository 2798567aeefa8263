{{/*
Names and labels. Labels follow the Kubernetes recommended labels
(app.kubernetes.io/*); the selector uses only name and instance, which never
change over a release's life.
*/}}
{{- define "thingcall.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "thingcall.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "thingcall.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "thingcall.selectorLabels" -}}
app.kubernetes.io/name: {{ include "thingcall.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "thingcall.labels" -}}
helm.sh/chart: {{ include "thingcall.chart" . }}
{{ include "thingcall.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: thingcall
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "thingcall.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "thingcall.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Where each secret file comes from: "existing" (a Secret the user names),
"inline" (a value, stored in the chart's Secret) or "" (none).
*/}}
{{- define "thingcall.mqttPasswordFrom" -}}
{{- if .Values.mqtt.existingSecret }}existing{{ else if .Values.mqtt.password }}inline{{ end }}
{{- end }}

{{- define "thingcall.mqttCAFrom" -}}
{{- $t := .Values.mqtt.tls }}
{{- if and $t.existingSecret $t.hasCA }}existing{{ else if and (not $t.existingSecret) $t.ca }}inline{{ end }}
{{- end }}

{{- define "thingcall.mqttClientCertFrom" -}}
{{- $t := .Values.mqtt.tls }}
{{- if and $t.existingSecret $t.hasClientCert }}existing{{ else if and (not $t.existingSecret) $t.cert }}inline{{ end }}
{{- end }}

{{- define "thingcall.apiKeysFrom" -}}
{{- if .Values.auth.apiKeysSecret }}existing{{ else if .Values.auth.apiKeys }}inline{{ end }}
{{- end }}

{{- define "thingcall.jwtSecretFrom" -}}
{{- if .Values.auth.jwt.existingSecret }}existing{{ else if .Values.auth.jwt.secret }}inline{{ end }}
{{- end }}

{{/* "true" when JWT bearer tokens are configured (a key source exists). */}}
{{- define "thingcall.jwtEnabled" -}}
{{- $j := .Values.auth.jwt }}
{{- if or (include "thingcall.jwtSecretFrom" .) $j.jwksUrl $j.jwks }}true{{ end }}
{{- end }}

{{/* "true" when the chart's own Secret has anything to hold. */}}
{{- define "thingcall.chartSecretNeeded" -}}
{{- if or (eq (include "thingcall.mqttPasswordFrom" .) "inline") (eq (include "thingcall.mqttCAFrom" .) "inline") (eq (include "thingcall.mqttClientCertFrom" .) "inline") (eq (include "thingcall.apiKeysFrom" .) "inline") (eq (include "thingcall.jwtSecretFrom" .) "inline") }}true{{ end }}
{{- end }}

{{/* "true" when anything is mounted under /etc/thingcall/secrets. */}}
{{- define "thingcall.secretsMounted" -}}
{{- if or (include "thingcall.mqttPasswordFrom" .) (include "thingcall.mqttCAFrom" .) (include "thingcall.mqttClientCertFrom" .) (include "thingcall.apiKeysFrom" .) (include "thingcall.jwtSecretFrom" .) }}true{{ end }}
{{- end }}

{{/* The drain timeout in whole seconds, from `10` or `10s`. */}}
{{- define "thingcall.drainSeconds" -}}
{{- $raw := toString .Values.drainTimeout }}
{{- $n := $raw | trimSuffix "s" | atoi }}
{{- if or (le $n 0) (ne (printf "%d" $n) ($raw | trimSuffix "s")) }}
{{- fail (printf "drainTimeout must be whole seconds such as 10 or 10s, not %q" $raw) }}
{{- end }}
{{- $n }}
{{- end }}

{{- define "thingcall.terminationGracePeriodSeconds" -}}
{{- $floor := add (include "thingcall.drainSeconds" . | atoi) (int .Values.preStopSleepSeconds) }}
{{- if .Values.terminationGracePeriodSeconds }}
{{- $g := int .Values.terminationGracePeriodSeconds }}
{{- if le $g $floor }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above preStopSleepSeconds + drainTimeout (%d), or calls in flight are killed mid-drain" $g $floor) }}
{{- end }}
{{- $g }}
{{- else }}
{{- add $floor 5 }}
{{- end }}
{{- end }}

{{/*
Refuse values the gateway would refuse at start-up (exit 64, pods
crash-looping), with the reason, at render time.
*/}}
{{- define "thingcall.validate" -}}
{{- if not .Values.mqtt.url }}
{{- fail "mqtt.url is required (e.g. mqtts://broker:8883): without it each pod would run a broker of its own that no device shares" }}
{{- end }}
{{- if not (regexMatch "^(mqtt|mqtts|ws|wss)://" .Values.mqtt.url) }}
{{- fail (printf "mqtt.url must start with mqtt://, mqtts://, ws:// or wss://, not %q" .Values.mqtt.url) }}
{{- end }}
{{- if and (include "thingcall.mqttPasswordFrom" .) (not .Values.mqtt.username) }}
{{- fail "a broker password needs mqtt.username" }}
{{- end }}
{{- $t := .Values.mqtt.tls }}
{{- if and (not $t.existingSecret) (or (and $t.cert (not $t.key)) (and $t.key (not $t.cert))) }}
{{- fail "mqtt.tls.cert and mqtt.tls.key go together" }}
{{- end }}
{{- $j := .Values.auth.jwt }}
{{- if and (include "thingcall.jwtEnabled" .) (or (not $j.issuer) (not $j.audience)) }}
{{- fail "JWTs need auth.jwt.issuer and auth.jwt.audience" }}
{{- end }}
{{- if and (or $j.issuer $j.audience) (not (include "thingcall.jwtEnabled" .)) }}
{{- fail "auth.jwt.issuer/audience need a key source: auth.jwt.jwksUrl, auth.jwt.jwks, auth.jwt.secret or auth.jwt.existingSecret" }}
{{- end }}
{{- if and $j.jwksUrl $j.jwks }}
{{- fail "give auth.jwt.jwksUrl or auth.jwt.jwks, not both" }}
{{- end }}
{{- if not (or (include "thingcall.apiKeysFrom" .) (include "thingcall.jwtEnabled" .) .Values.auth.insecureNoAuth) }}
{{- fail "no caller authentication: set auth.apiKeysSecret (or auth.apiKeys), or auth.jwt.*, or auth.insecureNoAuth=true for a network you trust; the gateway refuses to serve 0.0.0.0 open" }}
{{- end }}
{{- if and .Values.metrics.auth .Values.serviceMonitor.enabled (not .Values.serviceMonitor.authorization.secretName) }}
{{- fail "metrics.auth with serviceMonitor.enabled needs serviceMonitor.authorization.secretName, or Prometheus is refused" }}
{{- end }}
{{- end }}
