// Elaboration blow-up: a hundred million generate instances.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  genvar i;
  generate
    for (i = 0; i < 100000000; i = i + 1) begin : g
      wire [7:0] w = a + i;
    end
  endgenerate
  assign y = a ^ b;
endmodule
