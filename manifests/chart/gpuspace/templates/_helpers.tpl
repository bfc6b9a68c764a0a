{{/*
Labels of every object: the one kustomize adds (app.kubernetes.io/part-of)
and Helm's usual ones. Pod templates and selectors keep only their own, as
in the kustomize bases, so that a helm upgrade never changes a selector.
*/}}
{{- define "gpuspace.labels" -}}
app.kubernetes.io/part-of: gpuspace
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* gpuspace.image: the image of one binary (gpuspace, gpuspace-scheduler, gpuspace-device-plugin). */}}
{{- define "gpuspace.image" -}}
image: {{ printf "%s/%s:%s" .root.Values.image.registry .name .root.Values.image.tag | quote }}
{{- with .root.Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{/*
gpuspace.file renders a copy of a kustomize manifest (files/ holds them,
copied by `make generate`) as it is, adding the labels above: dict "root"
$, "path" under files/, "skip" a list of Kind/name to leave out. CRDs are
kept on helm uninstall: deleting one deletes every object of its kind.
*/}}
{{- define "gpuspace.file" -}}
{{- $root := .root }}
{{- $path := .path }}
{{- $content := $root.Files.Get (printf "files/%s" $path) }}
{{- if not $content }}{{ fail (printf "chart file files/%s is missing or empty; run make generate" $path) }}{{ end }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" $content -1 }}
{{- $obj := fromYaml $doc }}
{{- if hasKey $obj "Error" }}{{ fail (printf "files/%s: %s" $path $obj.Error) }}{{ end }}
{{- if and $obj (not (has (printf "%s/%s" $obj.kind $obj.metadata.name) $.skip)) }}
{{- $meta := $obj.metadata }}
{{- $_ := set $meta "labels" (merge (default (dict) $meta.labels) (include "gpuspace.labels" $root | fromYaml)) }}
{{- if eq $obj.kind "CustomResourceDefinition" }}
{{- $_ := set $meta "annotations" (merge (default (dict) $meta.annotations) (dict "helm.sh/resource-policy" "keep")) }}
{{- end }}
---
# From manifests/{{ $path }}
{{ toYaml $obj }}
{{- end }}
{{- end }}
{{- end }}

{{/*
gpuspace.kustomizeHash is the name suffix kustomize's configMapGenerator
gives a ConfigMap with these data (sigs.k8s.io/kustomize/api/hasher): the
first 10 hex digits of the SHA-256 of {"data":...,"kind":"ConfigMap",
"name":""} as Go's encoding/json writes it, with 0, 1, 3, a and e replaced.
The name is empty there because kustomize looks it up by a path it does not
find ("metadata/name" as one key); kept so, to give the same names. The
chart names the scheduler's ConfigMap as kustomize does, so that a changed
configuration rolls the scheduler in both.
*/}}
{{- define "gpuspace.kustomizeHash" -}}
{{- $json := dict "data" . "kind" "ConfigMap" "name" "" | toJson }}
{{- $hex := $json | sha256sum | trunc 10 }}
{{- $hex | replace "0" "g" | replace "1" "h" | replace "3" "k" | replace "a" "m" | replace "e" "t" }}
{{- end }}
